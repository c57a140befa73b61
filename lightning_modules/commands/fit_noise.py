"""``fit_noise(cfg)``: fit the affine + Gaussian (+ JPEG) noise model to a folder of pairs and write it
as a ``data/noise`` config, ready for ``data=simulated data/noise=<name>`` or, to train a paired run on
fresh noise every step, ``data/noise@data.train_noise=<name>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from datamodules.io.atomic import atomic_write_text
from datamodules.io.pairing import find_pairs
from datamodules.noise import AffineGaussianNoiseModel
from datamodules.noise_fit import fit_affine_gaussian

TARGET = f"{AffineGaussianNoiseModel.__module__}.{AffineGaussianNoiseModel.__name__}"


def fit_noise(cfg: DictConfig) -> dict[str, Any]:
    """Fit on ``cfg.data_root/cfg.split`` (never the test split: the fit would see the test noise) and
    write ``cfg.output`` when given; returns the fitted keyword arguments and the fit's checks."""
    if cfg.split == "test":
        raise ValueError("split=test: fit the noise model on the train or val pairs, not on the images you test on")
    fitted = fit_affine_gaussian(find_pairs(Path(cfg.data_root).expanduser() / cfg.split), int(cfg.max_pairs))
    checks = fitted.pop("checks")
    AffineGaussianNoiseModel(**fitted)  # the fitted values pass the model's own checks
    print(_summary(fitted, checks))
    if cfg.output:
        output = Path(cfg.output).expanduser()
        if output.exists() and not cfg.overwrite:
            raise FileExistsError(f"output={output} exists; pass overwrite=true to replace it")
        atomic_write_text(output, _noise_config(fitted, checks, f"{cfg.data_root}/{cfg.split}"))
        print(f"wrote {output}")
    return {**fitted, "checks": checks}


def _summary(fitted: dict[str, Any], checks: dict[str, Any]) -> str:
    eight_bit = {key: fitted[key] * 255 for key in ("offset", "sigma", "floor")}
    return (
        f"low = clip(gain·high + offset + N(0, sigma²), floor, 1), 8-bit; JPEG q{fitted['jpeg_quality']} "
        f"for {fitted['jpeg_fraction']:.0%} of the images\n"
        f"gain {fitted['gain']:.4f}, offset {eight_bit['offset']:.2f}/255, sigma {eight_bit['sigma']:.2f}/255, "
        f"floor {eight_bit['floor']:.1f}/255 ({checks['pairs']} pairs; noise from {checks['noise_from']})\n"
        f"residual std by clean level: "
        + ", ".join(f"{band}: {value * 255:.2f}" for band, value in checks["residual_std_by_level"].items())
        + f"; lag-1 correlation x {checks['residual_correlation']['x']:+.3f}, "
        f"y {checks['residual_correlation']['y']:+.3f}"
    )


def _noise_config(fitted: dict[str, Any], checks: dict[str, Any], source: str) -> str:
    header = [
        f"# Fitted by scripts/fit_noise.py on {source} ({checks['pairs']} pairs; noise from {checks['noise_from']}).",
        "# " + _summary(fitted, checks).replace("\n", "\n# "),
    ]
    values = {"_target_": TARGET, **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in fitted.items()}}
    return "\n".join(header) + "\n" + OmegaConf.to_yaml(OmegaConf.create(values))
