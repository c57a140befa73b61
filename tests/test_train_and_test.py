"""End to end on tiny data: train(cfg) → checkpoints and TensorBoard → test.py's evaluate(cfg)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, make_paired_dataset, tiny_train_config
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from lightning_modules.commands.evaluate import evaluate
from lightning_modules.commands.train import train
from lightning_modules.inference.input_range import read_input_range

REPO = Path(__file__).resolve().parents[1]


def _read16(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.float64) / 65535.0


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = make_paired_dataset(root / "dataset", {"train": 4, "val": 2, "test": 3})
    run_dir = root / "logs" / "train" / "runs" / "run1"
    cfg = tiny_train_config(run_dir, ["data=pairs", f"data.root={data}"])
    metrics = train(cfg)
    return run_dir, data, metrics


def test_train_writes_checkpoints_events_and_config(trained_run):
    run_dir, _, metrics = trained_run
    ckpts = run_dir / "checkpoints"
    assert (ckpts / "best.ckpt").is_file() and (ckpts / "last.ckpt").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "run_config.yaml").is_file()
    for key in ("val/psnr", "val/ssim", "test/psnr", "test/psnr_noisy", "test/ssim", "test/mse"):
        assert np.isfinite(metrics[key]), key
    # Plain values only: loads with weights_only=True, without Lightning's help.
    checkpoint = torch.load(ckpts / "best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["encoder_name"] == "resnet18"
    weights = torch.load(ckpts / "best_model.pth", weights_only=True)
    assert weights["hparams"]["loss"] == {"name": "l1"} and "val/psnr" in weights


def test_tensorboard_has_curves_lr_and_image_grid(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, _ = trained_run
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_step", "val/loss", "val/psnr", "val/ssim", "lr-AdamW", "test/psnr", "test/ssim"} <= scalars
    assert "val/low_denoised_high" in events.Tags()["images"]


def test_test_script_finds_best_and_matches_scikit_image(trained_run):
    run_dir, data, metrics = trained_run
    cfg = compose_config("test", [f"paths.log_dir={run_dir.parents[2]}", "ckpt=best", "device=cpu"])
    summary = evaluate(cfg)
    assert Path(summary["checkpoint"]) == (run_dir / "checkpoints" / "best.ckpt").resolve()
    for name in ("psnr", "ssim", "psnr_noisy"):  # the run's own test is this same evaluation
        assert metrics[f"test/{name}"] == pytest.approx(summary["metrics"][name]["mean"], abs=1e-6), name
    results = run_dir / "results"
    rows = list(csv.DictReader((results / "metrics.csv").open()))
    assert [r["file"] for r in rows] == ["img_0.png", "img_1.png", "img_2.png"]
    for row in rows:
        high = _read16(data / "test" / "high" / row["file"])
        denoised = _read16(results / "images" / row["file"])  # written 16-bit, like the input
        low = _read16(data / "test" / "low" / row["file"])
        assert abs(float(row["psnr"]) - peak_signal_noise_ratio(high, denoised, data_range=1.0)) < 0.01
        assert abs(float(row["psnr_noisy"]) - peak_signal_noise_ratio(high, low, data_range=1.0)) < 0.01
    saved = json.loads((results / "summary.json").read_text())
    mean_psnr = np.mean([float(r["psnr"]) for r in rows])
    assert saved["metrics"]["psnr"]["mean"] == pytest.approx(mean_psnr, abs=1e-4)


def test_test_script_last_and_explicit_path(trained_run, tmp_path):
    run_dir, _, _ = trained_run
    last = compose_config("test", [f"run={run_dir}", "ckpt=last", f"results_dir={tmp_path / 'last'}"])
    assert Path(evaluate(last)["checkpoint"]).name == "last.ckpt"
    path = run_dir / "checkpoints" / "best.ckpt"
    explicit = compose_config("test", [f"ckpt={path}", f"results_dir={tmp_path / 'explicit'}", "write_images=false"])
    summary = evaluate(explicit)
    assert summary["images"] == 3 and not (tmp_path / "explicit" / "images").exists()


def test_exported_model_works_as_pretrained_and_tta_is_an_option(trained_run, tmp_path, monkeypatch):
    from lightning_modules.commands.export import export
    from lightning_modules.runs import folders as runs

    run_dir, _, _ = trained_run
    shipped = tmp_path / "pretrained"
    export(compose_config("export", [f"run={run_dir}", f"output={shipped}", "input_range.otherwise=physical"]))
    assert (shipped / "model.safetensors").is_file() and (shipped / "run_config.yaml").is_file()
    record = read_input_range(shipped)  # the run's training inputs, measured whole
    assert record["otherwise"] == "physical" and 0 < record["images"] <= 500
    assert 0.0 <= record["low"][0] <= record["low"][1] < record["high"][0] <= record["high"][1] <= 1.0
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export(compose_config("export", [f"run={run_dir}", f"output={shipped}"]))

    monkeypatch.setattr(runs, "PHYSICAL_DIR", shipped)  # either shipped name resolves its own folder
    base = ["ckpt=physical", "device=cpu", "write_images=false", f"paths.output_dir={tmp_path / 'out'}"]
    summary = evaluate(compose_config("test", base))
    reference = evaluate(
        compose_config("test", [f"run={run_dir}", f"results_dir={tmp_path / 'ref'}", "write_images=false"])
    )
    assert (tmp_path / "out" / "results" / "summary.json").is_file()  # not inside the shipped folder
    assert not (shipped / "results").exists()
    for metric in ("psnr", "ssim"):  # fp16 weights change the output only slightly
        assert summary["metrics"][metric]["mean"] == pytest.approx(reference["metrics"][metric]["mean"], abs=0.05)
    tta = evaluate(compose_config("test", [*base, "tta=8", f"paths.output_dir={tmp_path / 'tta'}"]))
    assert tta["tta"] == 8
    assert tta["metrics"]["psnr_noisy"]["mean"] == summary["metrics"]["psnr_noisy"]["mean"]
    assert tta["metrics"]["psnr"]["mean"] != summary["metrics"]["psnr"]["mean"]


def test_test_script_without_runs_says_so(tmp_path):
    cfg = compose_config("test", [f"paths.log_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="ckpt=best: no training run"):
        evaluate(cfg)


def test_bad_values_are_refused_before_work(tmp_path, paired_root):
    for override, message in [
        ("optim.lr=0", "optim.lr must be > 0"),
        ("data.patch_size=48", "multiple of 32"),
        ("data.patch_size=-32", "data.patch_size must be a positive number"),
        ("data.batch_size=0", "data.batch_size must be a positive number, got 0"),
        ("trainer.max_epochs=0", r"trainer.max_epochs must be >= 1 \(or -1 for no limit\), got 0"),
    ]:
        cfg = tiny_train_config(tmp_path / "run", ["data=pairs", f"data.root={paired_root}", override])
        with pytest.raises(ValueError, match=message):
            train(cfg)
    cfg = tiny_train_config(tmp_path / "run", ["data=pairs", f"data.root={tmp_path / 'missing'}"])
    with pytest.raises(Exception, match="data.root: folder not found"):
        train(cfg)
    (tmp_path / "a_file").write_text("")  # a folder cannot be made inside a file, not even by root
    cfg = tiny_train_config(tmp_path / "a_file" / "run", ["data=pairs", f"data.root={paired_root}"])
    with pytest.raises(PermissionError, match=r"paths.output_dir: cannot write to .*a_file/run"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.e2e
def test_multirun_writes_one_folder_per_job(tmp_path, paired_root):
    result = subprocess.run(
        [
            sys.executable,
            "scripts/train.py",
            "-m",
            "debug=fast",
            "loss=l1,mse",
            "data=pairs",
            f"data.root={paired_root}",
            "data.patch_size=32",
            "data.batch_size=2",
            f"paths.log_dir={tmp_path}",
            "~callbacks.progress_bar",
            "trainer.enable_progress_bar=false",
            "test=false",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.parent for p in tmp_path.glob("train/multiruns/*/*/run_config.yaml"))
    assert len(jobs) == 2
    assert jobs[0].name.startswith("0_") and "loss=l1" in jobs[0].name
    assert jobs[1].name.startswith("1_") and "loss=mse" in jobs[1].name
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert list((job / "tensorboard").glob("events.out.tfevents.*"))

    # the sweep summary re-evaluates each best checkpoint: scikit-image's SSIM and one crop per job
    from skimage.metrics import structural_similarity

    from datamodules.datamodule import PairedDataModule
    from lightning_modules.nets.checkpoints import load_network
    from lightning_modules.report.sweep import summarise_sweep

    summary = summarise_sweep(jobs[0].parent, tmp_path / "summary", html=False, images=True)
    assert (tmp_path / "summary" / "sweep_crops.png").stat().st_size > 1000
    assert "test SSIM (scikit-image)" in (tmp_path / "summary" / "sweep.md").read_text()
    test_split = PairedDataModule(str(paired_root), num_workers=0).dataset("test")
    for row, job in zip(summary["jobs"], jobs):
        net = load_network(job / "checkpoints" / "best.ckpt")[0]
        with torch.no_grad():
            expected = [
                structural_similarity(
                    net(s["low"][None]).clamp(0, 1)[0, 0].numpy(), s["high"][0].numpy(), data_range=1.0
                )
                for s in test_split
            ]
        assert row["test/ssim_skimage"] == pytest.approx(sum(expected) / len(expected), abs=1e-5)


def test_16bit_dicom_in_16bit_dicom_out_through_the_data_path(trained_run, tmp_path):
    import pydicom
    from test_tiff_dicom import write_dicom_file

    run_dir, _, _ = trained_run
    rng = np.random.default_rng(0)
    for name in ("a.dcm", "b.dcm"):
        high = (rng.random((48, 40)) * 40000 + 10000).astype(np.uint16)
        low = np.clip(0.585 * high + 3000 + rng.normal(0, 3000, high.shape), 0, 65535).astype(np.uint16)
        write_dicom_file(tmp_path / "dicom" / "test" / "high" / name, high, bits_stored=16)
        write_dicom_file(tmp_path / "dicom" / "test" / "low" / name, low, bits_stored=16, photometric="MONOCHROME1")
    cfg = compose_config(
        "test", [f"run={run_dir}", "ckpt=best", f"data_root={tmp_path / 'dicom'}", f"results_dir={tmp_path / 'out'}"]
    )
    summary = evaluate(cfg)
    assert summary["images"] == 2
    for name in ("a.dcm", "b.dcm"):
        source = pydicom.dcmread(tmp_path / "dicom" / "test" / "low" / name)
        result = pydicom.dcmread(tmp_path / "out" / "images" / name)
        assert result.BitsStored == 16 and result.pixel_array.dtype == np.uint16
        assert result.pixel_array.shape == (48, 40)
        assert result.PhotometricInterpretation == "MONOCHROME1"
        assert result.PatientID == source.PatientID and result.StudyInstanceUID == source.StudyInstanceUID
        assert result.SOPInstanceUID != source.SOPInstanceUID


def test_denoise_script_keeps_names_formats_and_skips_done_outputs(trained_run, tmp_path):
    from datamodules.io.images import read_image, write_image
    from datamodules.io.pixels import ImageInfo
    from lightning_modules.commands.denoise import denoise

    run_dir, _, _ = trained_run
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    write_image(inputs / "wide16.png", rng.random((70, 301)), ImageInfo(16, ".png"))
    write_image(inputs / "photo.jpeg", rng.random((64, 64)), ImageInfo(8, ".jpeg"))
    (inputs / "notes.txt").write_text("not an image")
    overrides = [
        f"input={inputs}",
        f"output={tmp_path / 'out'}",
        f"run={run_dir}",
        "ckpt=best",
        "tile=64",
        "overlap=16",
        "progress=false",
    ]
    with pytest.warns(UserWarning, match="skipped 1 non-image file"):
        summary = denoise(compose_config("denoise", overrides))
    assert summary["images"] == 2 and summary["mpix"] == pytest.approx((70 * 301 + 64 * 64) / 1e6)
    out, info = read_image(tmp_path / "out" / "wide16.png")
    assert out.shape == (70, 301) and info.bit_depth == 16
    assert (tmp_path / "out" / "photo.png").is_file() and not (tmp_path / "out" / "photo.jpeg").exists()
    assert not list((tmp_path / "out").glob(".*part"))
    with pytest.warns(UserWarning, match="skipped 1 non-image file"):
        again = denoise(compose_config("denoise", overrides))
    assert again["images"] == 0 and again["skipped"] == 2


def test_denoise_errors_are_clear(tmp_path, monkeypatch):
    from lightning_modules.commands.denoise import denoise
    from lightning_modules.runs import folders as runs

    with pytest.raises(FileNotFoundError, match="input=.*no PNG, JPEG, TIFF or DICOM images"):
        denoise(compose_config("denoise", [f"input={tmp_path}", f"output={tmp_path / 'o'}"]))
    (tmp_path / "a.png").write_bytes(b"")
    monkeypatch.setattr(runs, "PRETRAINED_DIR", tmp_path / "nothing_shipped")
    with pytest.raises(FileNotFoundError, match="ckpt=pretrained: no shipped model"):
        denoise(compose_config("denoise", [f"input={tmp_path}", f"output={tmp_path / 'o'}"]))


def test_shipped_model_denoises_without_training(tmp_path):
    """The shipped weights load and clean a radiograph degraded like the paired data."""
    from datamodules.io.images import read_image, write_image
    from datamodules.io.pixels import ImageInfo
    from lightning_modules.commands.denoise import denoise

    clean, _ = read_image(
        REPO
        / "datamodules"
        / "sample_data"
        / "test"
        / sorted(p.name for p in (REPO / "datamodules" / "sample_data" / "test").glob("*.png"))[0]
    )
    rng = np.random.default_rng(0)
    low = np.clip(0.585 * clean + 0.048 + rng.normal(0, 0.046, clean.shape), 0, 1)
    write_image(tmp_path / "in" / "low.png", low, ImageInfo(16, ".png"))
    summary = denoise(
        compose_config(
            "denoise", [f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "progress=false", "device=cpu"]
        )
    )
    out, info = read_image(tmp_path / "out" / "low.png")
    assert summary["images"] == 1 and info.bit_depth == 16 and out.shape == clean.shape
    before = peak_signal_noise_ratio(clean, low, data_range=1.0)
    after = peak_signal_noise_ratio(clean, out, data_range=1.0)
    assert after > before + 8.0, (before, after)
