"""An inference-only copy of :class:`~lightning_modules.nets.unet.DenoisingUnet`, built from its weights.

Same function as the trained network (``smp.Unet`` with a ResNet-18/34 encoder, BatchNorm, no
decoder attention), rewritten for inference with torch alone:

- every BatchNorm is folded into the convolution before it (running statistics are constants
  at inference), which removes a pass over every activation;
- with ``fused=True`` (CPU) each convolution runs as one oneDNN primitive with its ReLU, and
  the residual add + ReLU of each ResNet block, fused in (``torch.ops.mkldnn._convolution_pointwise``,
  the kernels ``torch.compile`` uses on CPU): ≈ 1.5× eager ``channels_last`` on the CPU in fp32; with
  ``dtype=torch.bfloat16`` the weights and activations are bf16 (the same numbers as bf16 autocast,
  ≈ 1.3× faster than it where the CPU has native bf16) except in the last ``fp32_blocks`` decoder
  blocks and the head, which stay fp32 (bf16 there is not accurate enough for this model); the last
  ``stripe_blocks`` decoder blocks run on row stripes, so their full- and half-resolution
  activations never exist for a whole tile;
- it never imports ``segmentation_models_pytorch`` (timm, torchvision, torch._dynamo: seconds of
  start-up), so ``scripts/denoise.py`` reaches its first tile sooner.

Outputs equal the eager network's within fp32 rounding (``tests/test_benchmark.py``). Other
architectures (GroupNorm, attention, deeper encoders) are refused by :func:`unsupported_reason`
and run as the eager network instead.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.nets.forward import eval_margin, forward_padded
from lightning_modules.nets.skip import AFFINE_KEY, InputSkip
from lightning_modules.nets.stripes import by_row_stripes, stripe_rows

ENCODER_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
BN_EPS = 1e-5  # torchvision's and smp's BatchNorm eps (not stored in the state dict)
FP32_DECODER_BLOCKS = 1  # the full-resolution decoder block + head: fp32 even on bf16 paths (see FastUnet)
STRIPE_DECODER_BLOCKS = 2  # half- and full-resolution decoder blocks + head: on row stripes (memory)
TAIL_HALO = 16  # rows around each stripe of the striped blocks: twice their receptive field (about 8 rows)


def unsupported_reason(hparams: dict[str, Any], state: dict[str, torch.Tensor]) -> str | None:
    """Why this network cannot be rebuilt as a :class:`FastUnet`, or ``None`` if it can."""
    encoder = hparams.get("encoder_name", "resnet18")
    if encoder not in ENCODER_BLOCKS:
        return f"encoder_name={encoder} (supported: {', '.join(ENCODER_BLOCKS)})"
    if hparams.get("decoder_attention_type"):
        return f"decoder_attention_type={hparams['decoder_attention_type']}"
    if hparams.get("norm", "batch") != "batch":
        return f"norm={hparams['norm']} (only BatchNorm folds into convolutions)"
    if "unet.encoder.bn1.running_mean" not in state or "unet.segmentation_head.0.weight" not in state:
        return "the weights are not those of a DenoisingUnet with BatchNorm"
    return None


def _tracing() -> bool:
    """True under ONNX export, TorchScript tracing or torch.compile, which want out-of-place ops."""
    return torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_compiling()


def fused_ops_available() -> bool:
    """Whether this torch build has oneDNN's fused convolution kernels (CPU builds with mkldnn)."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


class ConvUnit(nn.Module):
    """A convolution with its BatchNorm folded in, optionally followed by ReLU."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int, relu: bool, fused: bool) -> None:
        super().__init__()
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))  # NHWC kernels
        self.register_buffer("bias", bias.contiguous())
        self.stride, self.padding = [stride, stride], [weight.shape[-1] // 2] * 2
        self.relu, self.fused = relu, fused

    def pack(self) -> bool:
        """Reorder the weight once into oneDNN's own layout (fused only; as ``torch.compile``'s freezing does),
        instead of on every call: 1024² bf16 passes ran 1.3× faster. False where this torch cannot."""
        if not self.fused or self.weight.is_mkldnn:
            return self.fused
        try:
            hint = [1, self.weight.shape[1], 512, 512]  # an input size for choosing the layout; any size runs
            self.weight = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, self.padding, self.stride, [1, 1], 1, hint
            )
        except (AttributeError, RuntimeError):
            return False
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, self.padding, self.stride, [1, 1], 1, "relu" if self.relu else "none", [], ""
            )
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return y.relu_() if self.relu else y

    def add_relu(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``relu(conv(x) + other)``: the end of a ResNet block."""
        if self.fused:
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, other, self.weight, self.bias, self.padding, self.stride, [1, 1], 1, "add", 1.0, "relu", [], ""
            )
        return (F.conv2d(x, self.weight, self.bias, self.stride, self.padding) + other).relu_()


class BasicBlock(nn.Module):
    def __init__(self, conv1: ConvUnit, conv2: ConvUnit, downsample: ConvUnit | None) -> None:
        super().__init__()
        self.conv1, self.conv2, self.downsample = conv1, conv2, downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.downsample(x) if self.downsample is not None else x
        return self.conv2.add_relu(self.conv1(x), identity)


class DecoderBlock(nn.Module):
    def __init__(self, conv1: ConvUnit, conv2: ConvUnit) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2

    def forward(self, x: torch.Tensor, size: tuple[int, int], skip: torch.Tensor | None) -> torch.Tensor:
        return self.conv2(self.conv1(upsample_cat(x, size, skip)))


def upsample_cat(x: torch.Tensor, size: tuple[int, int], skip: torch.Tensor | None) -> torch.Tensor:
    """``cat([nearest_upsample(x, size), skip], dim=1)`` in NHWC, the 2× upsampling written straight
    into the concatenated tensor (one pass over memory fewer than interpolate + cat)."""
    batch, channels, height, width = x.shape
    if skip is None or tuple(size) != (2 * height, 2 * width) or skip.shape[-2:] != tuple(size) or _tracing():
        x = F.interpolate(x, size=size, mode="nearest")
        return x if skip is None else torch.cat([x, skip], dim=1)
    out = torch.empty(
        batch, channels + skip.shape[1], *size, dtype=x.dtype, device=x.device, memory_format=torch.channels_last
    )
    nhwc = out.permute(0, 2, 3, 1)  # a contiguous (B, H, W, C) view
    nhwc.view(batch, height, 2, width, 2, -1)[..., :channels].copy_(x.permute(0, 2, 3, 1)[:, :, None, :, None, :])
    nhwc[..., channels:].copy_(skip.permute(0, 2, 3, 1))
    return out


class FastUnet(nn.Module):
    """Inference-only :class:`DenoisingUnet` from ``(hparams, state)``; see the module docstring.

    Args:
        hparams: the network hyper-parameters of a checkpoint (``encoder_name``, ``residual``, ...).
        state: the DenoisingUnet state dict (keys ``unet.encoder...``).
        fused: run oneDNN fused kernels (CPU only; bf16 autocast needs ``False``).
        dtype: of the weights and activations (``torch.bfloat16``: bf16 without autocast; inputs are cast
            to it and outputs back to the input's dtype).
        fp32_blocks: the last decoder blocks (and the head) that always run in fp32, whatever ``dtype``
            and autocast say. The shipped models' full-resolution decoder activations reach a few
            hundred on large images while the head's output is about 1: all in bf16, the first
            shipped model moved pixels by up to 0.11 against fp32 on 1536² radiographs; with the
            last block in fp32 by 0.028, with the last 2 by 0.026 (the current one: 0.033 / 0.031 /
            0.031), so 1 block (:data:`FP32_DECODER_BLOCKS`) and 15 % less time per pass.
        stripe_blocks: the last decoder blocks (and the head) run on row stripes of about 1 Mpix
            (at least ``fp32_blocks``; bit-identical to one pass, :mod:`~lightning_modules.nets.stripes`).
    """

    multiple = 32

    def __init__(
        self,
        hparams: dict[str, Any],
        state: dict[str, torch.Tensor],
        fused: bool = False,
        dtype: torch.dtype = torch.float32,
        fp32_blocks: int = 0,
        stripe_blocks: int = 0,
    ) -> None:
        super().__init__()
        reason = unsupported_reason(hparams, state)
        if reason is not None:
            raise ValueError(f"FastUnet cannot rebuild this network: {reason}")
        s = {k[len("unet.") :]: v.detach().float() for k, v in state.items() if k.startswith("unet.")}

        def unit(conv: str, bn: str | None, stride: int, relu: bool) -> ConvUnit:
            weight, bias = s[f"{conv}.weight"], s.get(f"{conv}.bias")
            bias = torch.zeros(weight.shape[0]) if bias is None else bias
            if bn is not None:
                scale = s[f"{bn}.weight"] / torch.sqrt(s[f"{bn}.running_var"] + BN_EPS)
                weight = weight * scale[:, None, None, None]
                bias = (bias - s[f"{bn}.running_mean"]) * scale + s[f"{bn}.bias"]
            return ConvUnit(weight, bias, stride, relu, fused)

        self.stem = unit("encoder.conv1", "encoder.bn1", 2, True)
        # One input channel makes NCHW and NHWC the same layout, and the convolution then answers
        # in NCHW; a second, all-zero input channel keeps the stem (and every later layer) NHWC.
        self.stem.weight = torch.cat([self.stem.weight, torch.zeros_like(self.stem.weight)], dim=1).contiguous(
            memory_format=torch.channels_last
        )
        self.layers = nn.ModuleList()
        for index, blocks in enumerate(ENCODER_BLOCKS[hparams.get("encoder_name", "resnet18")], start=1):
            layer = nn.Sequential()
            for block in range(blocks):
                p = f"encoder.layer{index}.{block}"
                stride = 2 if f"{p}.downsample.0.weight" in s else 1
                down = unit(f"{p}.downsample.0", f"{p}.downsample.1", stride, False) if stride == 2 else None
                layer.append(
                    BasicBlock(
                        unit(f"{p}.conv1", f"{p}.bn1", stride, True), unit(f"{p}.conv2", f"{p}.bn2", 1, False), down
                    )
                )
            self.layers.append(layer)
        self.decoder = nn.ModuleList()
        while f"decoder.blocks.{len(self.decoder)}.conv1.0.weight" in s:
            p = f"decoder.blocks.{len(self.decoder)}"
            self.decoder.append(
                DecoderBlock(
                    unit(f"{p}.conv1.0", f"{p}.conv1.1", 1, True), unit(f"{p}.conv2.0", f"{p}.conv2.1", 1, True)
                )
            )
        self.head = unit("segmentation_head.0", None, 1, False)
        self.skip = InputSkip(hparams.get("residual", False))
        if AFFINE_KEY in state:
            self.skip.affine.data.copy_(state[AFFINE_KEY].float())
        self.fused, self.dtype = fused, dtype
        self.eval_margin = eval_margin(hparams)
        stripe_blocks = max(stripe_blocks, fp32_blocks)
        self.tail = len(self.decoder) - stripe_blocks if stripe_blocks else None  # first striped decoder block
        self.fp32_from = len(self.decoder) - fp32_blocks  # first decoder block kept in fp32
        if dtype != torch.float32:
            low = [self.stem, self.layers, *self.decoder[: self.fp32_from]] + ([] if fp32_blocks else [self.head])
            for module in low:
                module.to(dtype)
        if fused:
            for module in self.modules():
                if isinstance(module, ConvUnit):
                    module.pack()

    def core(self, x: torch.Tensor) -> torch.Tensor:
        """The network on a (B, 1, H, W) input whose sides are multiples of 32 (no padding)."""
        x = x.contiguous(memory_format=torch.channels_last)
        if _tracing():  # exporters and compilers get plain, out-of-place ops
            two = torch.cat([x, torch.zeros_like(x)], dim=1)
        else:
            two = torch.zeros((x.shape[0], 2, *x.shape[2:]), dtype=x.dtype, device=x.device)
            two = two.contiguous(memory_format=torch.channels_last)
            two[:, :1] = x
        skips = [self.stem(two)]  # full/2, full/4, full/8, full/16 resolution, shallow to deep
        del two
        y = F.max_pool2d(skips[0], kernel_size=3, stride=2, padding=1)
        for layer in self.layers:
            y = layer(y)
            skips.append(y)
        skips.pop()  # the deepest output is the decoder's input, not a skip
        for block in self.decoder[: self.tail]:  # deepest first; each skip is released once used (lower peak memory)
            y = self._decode(block, y, skips, x)
        if self.tail is None:
            out = self.head(y)
            return self.skip(out, x)
        if _tracing():
            return self._striped_tail(y, x, *skips)
        # in row stripes: the activations at full and half resolution never exist for the whole input
        height, width = x.shape[-2:]
        return by_row_stripes(self._striped_tail, [y, x, *skips], height, stripe_rows(width), TAIL_HALO)

    def _striped_tail(self, y: torch.Tensor, x: torch.Tensor, *skips: torch.Tensor) -> torch.Tensor:
        """The last decoder blocks and the head, on (a stripe of) their inputs; from ``fp32_from`` on in fp32."""
        remaining = list(skips)
        for block in self.decoder[self.tail : self.fp32_from]:
            y = self._decode(block, y, remaining, x)
        if self.fp32_from == len(self.decoder):  # no fp32 block: the head runs in the network's dtype
            out = self.head(y)
            return self.skip(out, x)
        with self._fp32_context(x):
            y, remaining = y.float(), [skip.float() for skip in remaining]
            for block in self.decoder[self.fp32_from :]:
                y = self._decode(block, y, remaining, x)
            out = self.head(y)
            return self.skip(out, x.float())

    @staticmethod
    def _decode(block: DecoderBlock, y: torch.Tensor, skips: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        skip = skips.pop() if skips else None
        return block(y, tuple((skip if skip is not None else x).shape[-2:]), skip)

    @staticmethod
    def _fp32_context(x: torch.Tensor) -> contextlib.AbstractContextManager:
        """Autocast off for the fp32 blocks when it is on (the bf16 autocast path)."""
        if torch.is_autocast_enabled(x.device.type):
            return torch.autocast(x.device.type, enabled=False)
        return contextlib.nullcontext()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype == torch.float32:
            return forward_padded(self.core, x, self.multiple, self.eval_margin)
        # bf16 weights: autocast off, or ops on its fp32 list (replicate padding) hand fp32 to bf16 kernels
        with torch.autocast(x.device.type, enabled=False):
            return forward_padded(self.core, x.to(self.dtype), self.multiple, self.eval_margin).to(x.dtype)
