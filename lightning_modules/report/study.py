"""Evaluate the model and classical baselines on the same noisy images, at every dose, per image.

Every method (the noisy input itself, each baseline, the model) sees the same low-dose image of each
clean image at each dose: the noise of image ``i`` is drawn from ``seed + i`` exactly as the data
modules draw validation/test noise, so the report's noisy images are the ones training was tested on.
Real pairs are one condition, ``"paired"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from datamodules.io.pixels import ImageReadError
from lightning_modules.classical.baselines import apply_baseline
from lightning_modules.classical.stabilisers import Stabiliser, stabiliser_for
from lightning_modules.nets.forward import run_network
from lightning_modules.nets.metrics import METRIC_NAMES, image_metrics
from lightning_modules.report.inputs import EvalImage

PAIRED = "paired"
Condition = float | str
Outputs = dict[Condition, dict[str, torch.Tensor]]


@dataclass
class StudyResult:
    """Per-image rows ``{file, dose, method, psnr, ssim, mse}``, the noisy reference curve and timings."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    reference: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # total seconds per method
    calls: dict[str, int] = field(default_factory=dict)  # images processed per method
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): images that could not be read

    def add_time(self, method: str, seconds: float, images: int) -> None:
        self.seconds[method] = self.seconds.get(method, 0.0) + seconds
        self.calls[method] = self.calls.get(method, 0) + images


class DoseStudy:
    """The model, the baselines and the low-dose inputs of a report.

    Args:
        net: the denoising network, (B, 1, H, W) → (B, 1, H, W).
        baselines: names from :data:`lightning_modules.classical.baselines.BASELINES`.
        doses: the doses to evaluate (simulated inputs), or ``[]`` with ``paired_stabiliser`` for real pairs.
        noise: the low-dose model (``simulate(clean, dose, generator)``) for simulated inputs.
        seed: noise seed of the split's first image (``datamodules.splits.eval_seed``).
        reference_doses: doses at which only the noisy input is measured (the reference curve).
        paired_stabiliser: the fitted intensity correction of real pairs (turns on paired mode).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        baselines: Sequence[str] = (),
        doses: Sequence[float] = (),
        noise: Any = None,
        seed: int = 0,
        reference_doses: Sequence[float] = (),
        paired_stabiliser: Stabiliser | None = None,
        device: torch.device | str = "cpu",
        bf16: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.channels_last = channels_last
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.bf16 = bf16
        self.baselines = list(baselines)
        self.paired_stabiliser = paired_stabiliser
        if paired_stabiliser is None and (noise is None or not doses):
            raise ValueError("DoseStudy: simulated inputs need a noise model and at least one dose")
        self.conditions: list[Condition] = [PAIRED] if paired_stabiliser is not None else [float(d) for d in doses]
        self.noise, self.seed = noise, int(seed)
        self.reference_doses = [float(d) for d in reference_doses] if paired_stabiliser is None else []

    @property
    def methods(self) -> list[str]:
        return ["noisy", *self.baselines, "model"]

    def noisy_input(self, image: EvalImage, clean: torch.Tensor, condition: Condition) -> torch.Tensor:
        if condition == PAIRED:
            return image.load(image.low)
        generator = torch.Generator().manual_seed(self.seed + image.index)
        return self.noise.simulate(clean, float(condition), generator)

    def stabiliser(self, condition: Condition) -> Stabiliser:
        return self.paired_stabiliser if condition == PAIRED else stabiliser_for(self.noise, float(condition))

    def predict(self, noisy: torch.Tensor) -> torch.Tensor:
        """The model's output for a (B, 1, H, W) batch, clamped to [0, 1], on the CPU in fp32."""
        pred = run_network(self.net, noisy.to(self.device), self.bf16, self.channels_last)
        return pred.clamp(0.0, 1.0).cpu().contiguous()

    def evaluate_image(
        self, image: EvalImage, conditions: Iterable[Condition] | None = None, result: StudyResult | None = None
    ) -> tuple[torch.Tensor, Outputs]:
        """The clean image and every method's output at each condition, each (1, H, W) in [0, 1]."""
        conditions = list(self.conditions if conditions is None else conditions)
        clean = image.load(image.clean)
        outputs: Outputs = {c: {"noisy": self.noisy_input(image, clean, c)} for c in conditions}
        timing = result if result is not None else StudyResult()
        for name in self.baselines:
            for condition in conditions:
                start = time.perf_counter()
                denoised = apply_baseline(name, outputs[condition]["noisy"][0].numpy(), self.stabiliser(condition))
                timing.add_time(name, time.perf_counter() - start, 1)
                outputs[condition][name] = torch.from_numpy(denoised).unsqueeze(0)
        start = time.perf_counter()
        preds = self.predict(torch.stack([outputs[c]["noisy"] for c in conditions]))
        timing.add_time("model", time.perf_counter() - start, len(conditions))
        for condition, pred in zip(conditions, preds):
            outputs[condition]["model"] = pred
        return clean, outputs

    def reference_rows(self, image: EvalImage, clean: torch.Tensor) -> list[dict[str, Any]]:
        """Metrics of the unprocessed input at every reference dose (the curve doses are read from)."""
        if not self.reference_doses:
            return []
        noisy = torch.stack([self.noisy_input(image, clean, d) for d in self.reference_doses])
        return [{"file": image.name, "dose": d, **v} for d, v in zip(self.reference_doses, _metrics(noisy, clean))]

    def run(self, images: Sequence[EvalImage], on_image: Callable[[EvalImage], None] | None = None) -> StudyResult:
        """Evaluate every image at every condition; ``on_image`` is called after each image.

        An image whose files cannot be read is listed in ``StudyResult.failed`` and left out.
        """
        result = StudyResult()
        for image in images:
            try:
                clean, outputs = self.evaluate_image(image, result=result)
            except ImageReadError as err:  # one bad file must not cost the report of all the others
                result.failed.append((str(image.clean), str(err)))
            else:
                result.rows.extend(metric_rows(image.name, clean, outputs, self.methods))
                result.reference.extend(self.reference_rows(image, clean))
            if on_image is not None:
                on_image(image)
        return result


def metric_rows(name: str, clean: torch.Tensor, outputs: Outputs, methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per condition and method: ``{file, dose, method, psnr, ssim, mse}``."""
    rows = []
    for condition, by_method in outputs.items():
        values = _metrics(torch.stack([by_method[m] for m in methods]), clean)
        rows += [{"file": name, "dose": condition, "method": m, **v} for m, v in zip(methods, values)]
    return rows


def _metrics(batch: torch.Tensor, clean: torch.Tensor) -> list[dict[str, float]]:
    """``{psnr, ssim, mse}`` of each image of ``batch`` against ``clean``."""
    values = image_metrics(batch, clean.expand_as(batch))
    return [{m: float(values[m][k]) for m in METRIC_NAMES} for k in range(len(batch))]
