"""The inference backends give fp32 eager's output within stated tolerances; the benchmark runs tiny.

Tolerances (absolute, on outputs of an untrained network whose values reach about 1.5):
channels_last 1e-4; ONNX Runtime 1e-3; bf16 0.05 of the output's mean magnitude (bf16 keeps 8 bits of
mantissa through some 30 layers; measured on these fixed inputs with an AVX-512-BF16 CPU: 0.023-0.034).
Nothing here asserts a speed.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from torch import nn

from datamodules.io.images import read_image, write_image
from datamodules.io.pixels import ImageInfo
from lightning_modules.inference.backends import InferencePath, choose_path, load_predictor
from lightning_modules.nets.checkpoints import save_weights
from lightning_modules.nets.unet import DenoisingUnet

HPARAMS = {"encoder_name": "resnet18", "residual": True}


def _net(seed: int = 0, **kwargs) -> DenoisingUnet:
    """An untrained network with non-trivial BatchNorm statistics (so folding them is tested)."""
    torch.manual_seed(seed)
    net = DenoisingUnet(residual=True, **kwargs).eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    return net


@pytest.fixture(scope="module")
def net() -> DenoisingUnet:
    return _net()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, net):
    path = tmp_path_factory.mktemp("ckpt") / "net.pth"
    return save_weights(path, net, HPARAMS)


@pytest.fixture(scope="module", autouse=True)
def xdg_cache(tmp_path_factory):
    """One ONNX cache for the module (each export takes seconds), never the user's ~/.cache."""
    root = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root))
        yield root


def _input(*shape: int, seed: int = 1) -> torch.Tensor:
    """A fixed random image batch: the same whatever ran before (bf16 bounds are set from measurement)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _reference(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def _bf16_error(approximate: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest error relative to the output's scale (about 1.5 for these untrained networks): bf16
    keeps 8 significant bits, so a few per cent after a whole network's rounding."""
    return float((approximate - reference).abs().max()) / float(reference.abs().mean())


def test_channels_last_equals_fp32(net):
    x = _input(2, 1, 64, 64)
    reference = _reference(net, x)
    fast = copy.deepcopy(net).to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)


def test_bf16_autocast_close_to_fp32_with_an_fp32_tail(checkpoint, net):
    """precision=bf16: autocast everywhere but the full-resolution decoder block and the head."""
    x = _input(2, 1, 32, 32)
    predictor, path = load_predictor(checkpoint, "cpu", choose_path("torch", "bf16", "cpu"))
    tail = predictor.get_submodule("unet.segmentation_head.module")  # inside its fp32 wrapper
    seen = []
    tail.register_forward_hook(lambda module, args, out: seen.append((args[0].dtype, out.dtype)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = predictor(x).float()
    assert path.bf16 and seen == [(torch.float32, torch.float32)]
    assert _bf16_error(out, _reference(net, x)) < 0.05


def test_onnxruntime_equals_fp32(checkpoint, xdg_cache, net):
    pytest.importorskip("onnxruntime")
    from lightning_modules.inference.onnx import default_cache_dir

    predictor, path = load_predictor(checkpoint, "cpu", choose_path("onnxruntime", "32"))
    for shape in [(2, 1, 64, 64), (1, 1, 70, 45)]:  # dynamic batch and size; the second is padded
        x = _input(*shape)
        torch.testing.assert_close(predictor(x), _reference(net, x), atol=1e-3, rtol=1e-3)
    cache = default_cache_dir()
    assert cache.is_relative_to(xdg_cache) and len(list(cache.glob("*.onnx"))) == 1
    load_predictor(checkpoint, "cpu", path)  # cached: exports nothing new
    assert len(list(cache.glob("*.onnx"))) == 1


def test_onnxruntime_and_torch_apply_a_self_supervised_models_fusion_and_intensity_map(tmp_path, net):
    pytest.importorskip("onnxruntime")
    from lightning_modules.selfsup.fusion import fuse_with_input

    level = {"kind": "constant", "sigma": 0.05, "source": "training.sigma"}
    mapped = {"gain": 1.5, "offset": -0.1, "split": "val", "images": 2}
    checkpoint = save_weights(
        tmp_path / "ssl.pth", net, {**HPARAMS, "intensity_map": mapped, "fusion": {"window": 5, "noise_level": level}}
    )
    x = _input(1, 1, 64, 64)
    expected = 1.5 * fuse_with_input(_reference(net, x), x, 0.05**2, 5).clamp(0, 1) - 0.1
    for backend, tolerance in (("torch", 1e-5), ("onnxruntime", 1e-3)):  # the graph is the network alone
        predictor, _ = load_predictor(checkpoint, "cpu", choose_path(backend, "32"))
        with torch.no_grad():
            torch.testing.assert_close(predictor(x), expected, atol=tolerance, rtol=tolerance)


def test_missing_onnxruntime_names_the_extra(checkpoint, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ImportError, match=r"xray-denoise\[onnx\]"):
        load_predictor(checkpoint, "cpu", choose_path("onnxruntime", "32"), cache_dir=tmp_path)


def test_choose_path_auto_and_errors(monkeypatch):
    from lightning_modules.inference import backends as inference_paths

    monkeypatch.setattr(inference_paths, "bf16_native", lambda device: False)
    onnx = inference_paths.importlib.util.find_spec("onnxruntime") is not None
    assert choose_path("auto", "auto", "cpu") == InferencePath("onnxruntime" if onnx else "torch", False, not onnx)
    assert choose_path("auto", "bf16", "cpu") == InferencePath("torch", bf16=True, channels_last=True)  # bf16: torch
    monkeypatch.setattr(inference_paths, "bf16_native", lambda device: True)
    assert choose_path("auto", "auto", "cpu") == InferencePath("torch", bf16=True, channels_last=True)  # native bf16
    assert choose_path("torch", "auto", "cpu").bf16 and choose_path("compile", "32", "cpu").backend == "compile"
    monkeypatch.setattr(inference_paths.importlib.util, "find_spec", lambda name: None)  # no onnx extra
    assert choose_path("auto", "32", "cpu") == InferencePath("torch", bf16=False, channels_last=True)
    with pytest.raises(ValueError, match="backend='tensorrt' is unknown"):
        choose_path("tensorrt", "32", "cpu")
    with pytest.raises(ValueError, match="precision='16' is unknown"):
        choose_path("torch", "16", "cpu")
    with pytest.raises(ValueError, match="backend=onnxruntime runs fp32 only"):
        choose_path("onnxruntime", "bf16", "cpu")


@pytest.mark.parametrize("network", [{"norm": "group"}, {"norm": "batch", "input_block": True}])
def test_the_default_configs_network_runs_on_every_backend(tmp_path, network):
    """``conf/model/unet.yaml`` trains GroupNorm networks, optionally with the full-resolution input
    block: ONNX Runtime and the default path run them too."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = DenoisingUnet(residual=True, **network).eval()
    if net.input_block is not None:  # it starts as a no-op: make it do something
        torch.nn.init.normal_(net.input_block.mix[-1].weight, std=0.05)
    path = save_weights(tmp_path / "gn.pth", net, {**HPARAMS, **network})
    x = _input(1, 1, 70, 45)
    for backend in ("auto", "onnxruntime", "torch"):
        predictor, taken = load_predictor(path, "cpu", choose_path(backend, "32", "cpu"), cache_dir=tmp_path)
        with torch.no_grad():
            torch.testing.assert_close(predictor(x), _reference(net, x), atol=1e-3, rtol=1e-3)
        assert taken.bytes_per_pixel > 0 and taken.eval_margin == net.eval_margin


def _denoise(folder, checkpoint, backend: str) -> np.ndarray:
    from lightning_modules.commands.denoise import denoise

    cfg = compose_config(
        "denoise",
        [
            f"input={folder / 'in'}",
            f"output={folder / backend}",
            f"ckpt={checkpoint}",
            f"backend={backend}",
            "precision=32",
            "tile=64",
            "overlap=16",
            "progress=false",
        ],
    )
    denoise(cfg)
    return read_image(folder / backend / "a.png")[0]


@pytest.fixture(scope="module")
def torch_denoised(tmp_path_factory, checkpoint):
    """A 16-bit 70×90 image (two tiles wide) and what denoise.py backend=torch makes of it."""
    folder = tmp_path_factory.mktemp("denoise")
    write_image(folder / "in" / "a.png", np.random.default_rng(0).random((70, 90)), ImageInfo(16, ".png"))
    return folder, _denoise(folder, checkpoint, "torch")


def test_denoise_onnxruntime_writes_the_torch_image(checkpoint, torch_denoised):
    backend = "onnxruntime"
    pytest.importorskip("onnxruntime")
    folder, reference = torch_denoised
    assert np.abs(_denoise(folder, checkpoint, backend) - reference).max() < 1e-3


@pytest.mark.e2e  # scripts/benchmark.py in a fresh process
def test_benchmark_runs_tiny_and_writes_its_table(tmp_path):
    """``scripts/benchmark.py`` as a user runs it, on tiny settings: the table is printed and written."""
    repo = Path(__file__).resolve().parents[1]
    overrides = [
        "sections=[forward,training]",
        "forward.sizes=[64]",
        "forward.backends=[torch]",
        "forward.repeats=1",
        "forward.warmup=false",
        "training.batch_size=2",
        "training.patch_size=64",
        "training.steps=1",
        "ceiling.size=32",
        f"hydra.run.dir={tmp_path}",
    ]
    done = subprocess.run(
        [sys.executable, "scripts/benchmark.py", *overrides], cwd=repo, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = (tmp_path / "benchmark.md").read_text()
    assert "| forward | backend=torch | 64² |" in table and "| training |" in table and "% of" in table
