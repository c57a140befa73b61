"""Fast inference paths give fp32 eager's output within stated tolerances; the benchmark runs tiny.

Tolerances (absolute, on outputs of an untrained network whose values reach about 1.5):
channels_last, FastUnet (BN folded, oneDNN fused) 1e-4; ONNX Runtime 1e-3; bf16 0.05 of the output's
mean magnitude (bf16 keeps 8 bits of mantissa through some 30 layers; measured on these fixed inputs
with an AVX-512-BF16 CPU: 0.023-0.034). Nothing here asserts a speed.
"""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest
import torch
from conftest import compose_config
from omegaconf import open_dict
from torch import nn

from datamodules.io.images import ImageInfo, read_image, write_image
from lightning_modules.inference.backends import InferencePath, bf16_native, choose_path, load_predictor
from lightning_modules.nets.checkpoints import save_weights
from lightning_modules.nets.fast_unet import FastUnet, fused_ops_available, unsupported_reason
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


def test_fast_unet_equals_eager(net):
    # fused oneDNN kernels (the CPU fp32 path) and plain folded convolutions (GPU, bf16, exports);
    # the odd size is padded to 96×64 and cropped back
    for fused, shape in [(True, (2, 1, 64, 64)), (True, (1, 1, 70, 45)), (False, (1, 1, 70, 45))]:
        x = _input(*shape)
        with torch.no_grad():
            out = FastUnet(HPARAMS, net.state_dict(), fused=fused)(x)
        torch.testing.assert_close(out, _reference(net, x), atol=1e-4, rtol=1e-4)


def test_fp32_tail_in_row_stripes_equals_one_pass(net, monkeypatch):
    """The last decoder blocks run on row stripes (bounded memory): the same output as one pass; the
    fp32 block stays fp32 with bf16 weights before it and under bf16 autocast."""
    from lightning_modules.nets import fast_unet

    x = _input(1, 1, 160, 96)
    tail = FastUnet(HPARAMS, net.state_dict(), fused=True, fp32_blocks=1, stripe_blocks=2)
    assert tail.tail == len(tail.decoder) - 2 and tail.fp32_from == len(tail.decoder) - 1
    with torch.no_grad():
        monkeypatch.setattr(fast_unet, "stripe_rows", lambda width: 64)  # three stripes (64 + 64 + 32 rows)
        striped = tail(x)
        monkeypatch.setattr(fast_unet, "stripe_rows", lambda width: 10**6)
        torch.testing.assert_close(striped, tail(x), atol=1e-6, rtol=0)
        torch.testing.assert_close(striped, _reference(net, x), atol=1e-4, rtol=1e-4)
        bf16 = FastUnet(HPARAMS, net.state_dict(), fused=True, dtype=torch.bfloat16, fp32_blocks=1, stripe_blocks=2)
        assert bf16.decoder[-2].conv1.weight.dtype == torch.bfloat16  # the half-resolution block: bf16
        assert bf16.decoder[-1].conv1.weight.dtype == torch.float32 and bf16.head.weight.dtype == torch.float32
        monkeypatch.setattr(fast_unet, "stripe_rows", lambda width: 64)
        low = bf16(x)
        monkeypatch.setattr(fast_unet, "stripe_rows", lambda width: 10**6)
        torch.testing.assert_close(low, bf16(x), atol=1e-6, rtol=0)  # striping changes nothing in bf16 either
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = FastUnet(HPARAMS, net.state_dict(), fp32_blocks=1, stripe_blocks=2)(x)
    scale = float(striped.abs().mean())  # about 1.5 for this untrained network
    for approximate in (low, mixed):  # bf16 encoder through an untrained network: measured max 3-4 %, mean 0.6 %
        error = (approximate - striped).abs()
        assert approximate.dtype == torch.float32 and float(error.max()) < 0.1 * scale
        assert float(error.mean()) < 0.01 * scale


def test_fast_unet_refuses_what_it_cannot_fold(net):
    state = net.state_dict()
    assert unsupported_reason({"norm": "group"}, state).startswith("norm=group")
    assert "encoder_name" in unsupported_reason({"encoder_name": "resnet50"}, state)
    with pytest.raises(ValueError, match="decoder_attention_type=scse"):
        FastUnet({"decoder_attention_type": "scse"}, state)


def test_channels_last_equals_fp32(net):
    x = _input(2, 1, 64, 64)
    reference = _reference(net, x)
    fast = copy.deepcopy(net).to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)


def test_bf16_autocast_close_to_fp32(net):
    """Eager and FastUnet under bf16 autocast."""
    x = _input(2, 1, 32, 32)
    reference = _reference(net, x)
    for candidate in (net, FastUnet(HPARAMS, net.state_dict(), fused=False)):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = candidate(x).float()
        assert _bf16_error(out, reference) < 0.05


@pytest.mark.skipif(not bf16_native("cpu"), reason="fused bf16 kernels run only where the CPU has native bf16")
def test_fused_bf16_equals_bf16_autocast(net):
    """The default path where bf16 is native: bf16 weights through oneDNN's fused kernels, no autocast;
    fp32 in and out (odd size padded and cropped), within bf16 tolerance of fp32 and of bf16 autocast."""
    x = _input(2, 1, 70, 45)
    fused = FastUnet(HPARAMS, net.state_dict(), fused=True, dtype=torch.bfloat16)
    with torch.no_grad():
        out = fused(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = FastUnet(HPARAMS, net.state_dict(), fused=False)(x).float()
    assert out.dtype == torch.float32 and out.shape == x.shape
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # as run_network calls it: autocast stays out
        assert torch.equal(fused(x), out)
    assert _bf16_error(out, _reference(net, x)) < 0.05
    assert _bf16_error(out, autocast) < 0.05  # both round to bf16, in different places


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
    path = choose_path("auto", "auto", "cpu")
    assert path.backend == "fast" and not path.bf16
    path = choose_path("fast", "bf16", "cpu")  # forced bf16 without native support: autocast, unfused
    assert path.backend == "fast" and path.bf16 and not path.fused
    monkeypatch.setattr(inference_paths, "bf16_native", lambda device: True)
    path = choose_path("auto", "auto", "cpu")
    assert path.backend == "fast" and path.bf16 and path.fused == fused_ops_available()  # bf16 weights, fused
    assert choose_path("torch", "32", "cpu") == InferencePath("torch", bf16=False, channels_last=True)
    with pytest.raises(ValueError, match="backend='tensorrt' is unknown"):
        choose_path("tensorrt", "32", "cpu")
    with pytest.raises(ValueError, match="precision='16' is unknown"):
        choose_path("torch", "16", "cpu")
    with pytest.raises(ValueError, match="backend=onnxruntime runs fp32 only"):
        choose_path("onnxruntime", "bf16", "cpu")


def test_unsupported_network_falls_back_to_eager(tmp_path):
    path = save_weights(tmp_path / "gn.pth", DenoisingUnet(residual=True, norm="group"), {**HPARAMS, "norm": "group"})
    predictor, taken = load_predictor(path, "cpu", choose_path("fast", "32", "cpu"))
    assert isinstance(predictor, DenoisingUnet) and taken.backend == "torch" and "norm=group" in taken.note


def _denoise(folder, checkpoint, backend: str) -> np.ndarray:
    from lightning_modules.inference.denoise import denoise

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


@pytest.mark.parametrize("backend", ["fast", "onnxruntime"])
def test_denoise_backends_write_the_torch_image(checkpoint, torch_denoised, backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    folder, reference = torch_denoised
    assert np.abs(_denoise(folder, checkpoint, backend) - reference).max() < 1e-3


@pytest.mark.e2e
def test_child_peak_memory_is_its_own():
    from lightning_modules.benchmark.measure import run_process

    ballast = np.ones(200_000_000 // 8)  # this process is large; a small child must not inherit its peak
    small = run_process([sys.executable, "-c", "pass"])
    big = run_process([sys.executable, "-c", "import numpy; a = numpy.ones(150_000_000 // 8)"])
    assert small.returncode == 0 and small.peak_mb < 100
    assert big.peak_mb > 150 and ballast.sum() > 0


def test_benchmark_runs_tiny_and_writes_its_table(tmp_path):
    from lightning_modules.benchmark.runner import run_benchmark

    cfg = compose_config(
        "benchmark",
        [
            f"paths.log_dir={tmp_path / 'logs'}",
            "fail_fast=true",
            "flop_size=64",
            "sections=[ceilings,inference,tiled,quality,training,loader,baselines,gpu]",
            "ceilings.matmul_n=128",
            "ceilings.conv_size=32",
            "ceilings.emulated_matmul_n=32",
            "ceilings.emulated_conv_size=16",
            "ceilings.repeats=1",
            "inference.paths=[default]",
            "inference.sizes=[64]",
            "inference.repeats=1",
            "tiled.sizes=[64]",
            "tiled.paths=[default]",
            "quality.max_images=1",
            "quality.root=null",
            "quality.paths=[fp32,default]",
            "training.variants=[channels_last]",
            "training.levers=[fused_adam]",
            "training.batch_size=2",
            "training.patch_size=32",
            "training.warmup_steps=1",
            "training.steps=1",
            "loader.batches=2",
            "loader.warmup_batches=1",
            "baselines.methods=[nlm]",
            "baselines.images=1",
        ],
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    result = run_benchmark(cfg)
    report = json.loads((tmp_path / "run" / "benchmark.json").read_text())
    sections = {row["section"] for row in report["rows"]}
    assert {"ceilings", "inference", "tiled", "quality", "training", "loader", "baselines", "gpu"} <= sections
    assert not [row for row in report["rows"] if "failed" in row["note"] or "skipped" in row["note"]]
    cases = {(row["section"], row["case"]) for row in report["rows"]}
    assert {("inference", "default"), ("tiled", "default"), ("training", "Lightning loop, channels_last")} <= cases
    assert ("training", "raw loop, channels_last + fused_adam") in cases
    assert report["machine"]["cpu"] and "torch" in report["machine"]["versions"]
    assert {t["name"] for t in report["targets"]} >= {"denoise.py default vs ONNX Runtime", "8192² memory"}
    markdown = (tmp_path / "run" / "benchmark.md").read_text()
    assert "| inference | default | 1×64² |" in markdown and "## Targets" in markdown
    assert result["markdown"] == tmp_path / "run" / "benchmark.md"


@pytest.mark.e2e  # starts denoise.py and two interpreters
def test_endtoend_and_seams_sections_run_tiny(tmp_path):
    """The denoise.py-vs-ONNX Runtime row, its levers and the seam rows: structure and positive numbers."""
    pytest.importorskip("onnxruntime")
    from lightning_modules.benchmark.runner import run_benchmark

    cfg = compose_config(
        "benchmark",
        [
            f"paths.log_dir={tmp_path / 'logs'}",
            "fail_fast=true",
            "flop_size=64",
            "sections=[endtoend,seams]",
            "endtoend.size=64",
            "endtoend.images=2",
            "endtoend.onnx_size=64",
            "endtoend.onnx_repeats=2",
            "endtoend.lever_size=96",
            "endtoend.lever_repeats=1",
            "seams.root=null",
            "seams.images=1",
            "seams.size=96",
            "seams.cases=[64/32/8/32,64/32/0/1,default]",
        ],
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    run_benchmark(cfg)
    report = json.loads((tmp_path / "run" / "benchmark.json").read_text())
    rows = {(row["section"], row["case"]): row for row in report["rows"]}
    assert not [row for row in report["rows"] if "failed" in row["note"] or "skipped" in row["note"]]
    denoise_row = rows[("endtoend", "denoise.py default, start included")]
    onnx_row = rows[("endtoend", "ONNX Runtime fp32, bare network")]
    ratio_row = rows[("endtoend", "denoise.py end to end / ONNX Runtime bare")]
    assert denoise_row["size"] == "2×64²" and denoise_row["unit"] == "Mpix/s" and denoise_row["value"] > 0
    assert denoise_row["peak_mb"] > 0 and "whole image (64×64)" in denoise_row["note"]
    assert onnx_row["size"] == "1×64²" and onnx_row["value"] > 0
    assert ratio_row["value"] == pytest.approx(denoise_row["value"] / onnx_row["value"])
    assert "native bf16: " in ratio_row["note"] and "CPU flags" in ratio_row["note"]
    levers = [row for row in report["rows"] if row["case"].startswith("lever:")]
    assert len(levers) >= 3 and all(row["value"] > 0 for row in levers)
    assert levers[0]["note"].startswith("1.00× the first lever")
    seams = [row for row in report["rows"] if row["section"] == "seams"]
    assert {row["case"] for row in seams} >= {"default, 64/32/8/32", "default, 64/32/0/1"}
    assert all(
        row["value"] >= 0 and "% of pixels > 2/255" in row["note"] for row in seams if "whole vs" not in row["case"]
    )
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["denoise.py end to end vs ONNX Runtime bare"]["status"] == "n/a"  # not the target's 8×2048²
    assert "2×64²" in targets["denoise.py end to end vs ONNX Runtime bare"]["note"]
    assert targets["seams"]["status"] in ("met", "missed")
    assert (
        "| endtoend | denoise.py default, start included | 2×64² |" in (tmp_path / "run" / "benchmark.md").read_text()
    )
