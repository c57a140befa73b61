"""Evaluation report: GAT, classical baselines, statistics, dose reduction, report files, sweep summary."""

import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import PHYSICAL_NOISE, make_paired_dataset, run_report, smooth_image, write_untrained_run
from omegaconf import OmegaConf
from skimage.metrics import peak_signal_noise_ratio

from datamodules.datasets import SimulatedPairDataset
from datamodules.noise import AffineGaussianNoiseModel, PhysicalNoiseModel
from datamodules.splits import eval_seed
from lightning_modules.classical.anscombe import gat_forward, gat_inverse_algebraic, gat_inverse_unbiased
from lightning_modules.classical.baselines import apply_baseline, select_baselines
from lightning_modules.classical.stabilisers import fit_affine_degradation, stabiliser_for
from lightning_modules.report.stats import equivalent_dose, mean_ci

REPO = Path(__file__).resolve().parents[1]
HAS_BM3D = importlib.util.find_spec("bm3d") is not None


# --- Generalised Anscombe Transform ---------------------------------------------------------------


def test_gat_algebraic_inverse_is_exact_and_unbiased_inverse_removes_the_bias():
    counts = np.linspace(0.0, 5000.0, 101)
    assert np.allclose(gat_inverse_algebraic(gat_forward(counts, 5.0), 5.0), counts, atol=1e-9)
    rng = np.random.default_rng(0)
    for lam in (5.0, 20.0, 200.0):
        noisy = rng.poisson(lam, 200_000) + 5.0 * rng.standard_normal(200_000)
        z = gat_forward(noisy, 5.0)
        assert 0.93 < z.var() < 1.07, lam  # variance stabilised to 1 whatever the mean
        unbiased, algebraic = gat_inverse_unbiased(z.mean(), 5.0), gat_inverse_algebraic(z.mean(), 5.0)
        assert abs(unbiased - lam) < 0.02 * lam + 0.05
        assert abs(unbiased - lam) < abs(algebraic - lam)  # the algebraic inverse is biased low
    assert gat_inverse_unbiased(np.array([0.0, 1.0]), 5.0).min() >= 0.0


def test_physical_model_is_stabilised_to_unit_variance_in_display_units():
    model = PhysicalNoiseModel()
    for level, dose in ((0.3, 1.0), (0.5, 0.25), (0.4, 0.05)):  # away from the clipped ends
        flat = torch.full((1, 128, 128), level)
        noisy = model.simulate(flat, dose, torch.Generator().manual_seed(1))[0].numpy()
        stabiliser = stabiliser_for(model, dose)
        z = stabiliser.forward(noisy)
        assert stabiliser.sigma == 1.0 and 0.9 < z.std() < 1.1, (level, dose, z.std())
        assert abs(float(stabiliser.inverse(np.full((4, 4), z.mean())).mean()) - level) < 0.01


# --- classical baselines ----------------------------------------------------------------------------


def _psnr(image: np.ndarray, clean: np.ndarray) -> float:
    return peak_signal_noise_ratio(clean, np.clip(image, 0, 1).astype(np.float32), data_range=1.0)


@pytest.mark.parametrize("noise", [PhysicalNoiseModel(), AffineGaussianNoiseModel()], ids=["physical", "affine"])
def test_nlm_raises_psnr_on_a_noisy_smooth_image(noise):
    clean = smooth_image(np.random.default_rng(0), 64, 64)
    noisy = noise.simulate(torch.from_numpy(clean)[None], 0.1, torch.Generator().manual_seed(0))[0].numpy()
    denoised = apply_baseline("nlm", noisy, stabiliser_for(noise, 0.1))
    assert denoised.shape == clean.shape and denoised.dtype == np.float32
    assert _psnr(denoised, clean) > _psnr(noisy, clean) + 5.0


@pytest.mark.skipif(not HAS_BM3D, reason="optional bm3d extra not installed")
def test_bm3d_raises_psnr_on_a_noisy_smooth_image():
    clean = smooth_image(np.random.default_rng(1), 32, 32)
    model = PhysicalNoiseModel()
    noisy = model.simulate(torch.from_numpy(clean)[None], 0.1, torch.Generator().manual_seed(0))[0].numpy()
    assert _psnr(apply_baseline("bm3d", noisy, stabiliser_for(model, 0.1)), clean) > _psnr(noisy, clean) + 5.0


def test_missing_bm3d_is_skipped_with_a_note_and_unknown_names_are_refused(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bm3d" else real(name, *a))
    chosen, notes = select_baselines(["nlm", "bm3d"])
    assert chosen == ["nlm"] and "not installed" in notes[0] and "non-commercial" in notes[0]
    with pytest.raises(ValueError, match="baselines: 'wiener' is unknown"):
        select_baselines(["wiener"])


def test_affine_fit_recovers_the_paired_degradation(tmp_path):
    root = make_paired_dataset(tmp_path / "pairs", {"train": 3})  # low = 0.585 high + 0.048 + N(0, 0.046²)
    pairs = sorted(zip((root / "train" / "low").iterdir(), (root / "train" / "high").iterdir()))
    fit = fit_affine_degradation(pairs)
    assert fit.gain == pytest.approx(0.585, abs=0.02) and fit.offset == pytest.approx(0.048, abs=0.01)
    assert fit.noise == pytest.approx(0.046, abs=0.005) and fit.sigma == pytest.approx(0.046 / 0.585, rel=0.1)


# --- statistics -------------------------------------------------------------------------------------


def test_flat_box_finds_the_flattest_bright_window():
    from lightning_modules.report.figures import flat_box

    rng = np.random.default_rng(0)
    image = rng.uniform(0.3, 0.9, size=(96, 96))
    image[:, :24] = 0.0  # dark background: flatter than anything, but not body
    image[40:56, 60:76] = 0.5  # the one flat bright patch
    assert flat_box(image, 16) == (40, 60)
    assert flat_box(np.zeros((32, 32)), 8) == (0, 0)  # nothing bright: the flattest window anywhere


def test_mean_ci_is_the_student_t_interval():
    stat = mean_ci([1.0, 2.0, 3.0, 4.0])
    half = 3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2  # t(0.975, 3) = 3.1824
    assert stat["mean"] == 2.5 and stat["n"] == 4
    assert stat["ci95"] == pytest.approx([2.5 - half, 2.5 + half], abs=1e-4)
    assert mean_ci([7.0])["ci95"] == [7.0, 7.0]


def test_equivalent_dose_on_a_known_curve():
    doses = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0]
    psnr = [30 + 10 * np.log10(d) for d in doses]  # linear in log(dose): interpolation is exact
    match = equivalent_dose(doses, psnr, 30 + 10 * np.log10(0.6))
    assert not match.extrapolated and match.dose == pytest.approx(0.6, rel=1e-9)
    above = equivalent_dose(doses, psnr, 30 + 10 * np.log10(8.0))
    assert above.relation == ">" and above.bound == 2.0 and above.dose == pytest.approx(8.0, rel=1e-9)
    assert "> 2" in above.text() and "extrapolated" in above.text()
    below = equivalent_dose(doses, psnr, 10.0)
    assert below.relation == "<" and below.bound == 0.05
    # A noisy dip is flattened (running maximum), so the answer is still the first dose reaching the value.
    assert equivalent_dose([0.1, 0.2, 0.4], [20.0, 19.0, 22.0], 20.0).dose == pytest.approx(0.1)


# --- the report, end to end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A paired-layout dataset and two run folders (simulated dose-blind, real pairs), untrained tiny nets."""
    base = tmp_path_factory.mktemp("report")
    data = make_paired_dataset(base / "data", {"train": 2, "test": 3})
    data_cfgs = {
        "simulated": {
            "_target_": "datamodules.datamodule.SimulatedDataModule",
            "root": str(data),
            "noise": PHYSICAL_NOISE,
            "dose": [0.05, 1.0],
            "seed": 1234,
        },
        "paired": {"_target_": "datamodules.datamodule.PairedDataModule", "root": str(data)},
    }
    for name, data_cfg in data_cfgs.items():
        write_untrained_run(base / name, data_cfg)
    return base, data


def test_dose_report_writes_csv_json_markdown_and_figures(runs, tmp_path):
    base, data = runs
    out = tmp_path / "report"
    summary = run_report(base / "simulated", out, "doses=[1.0,0.1]", "baselines=[nlm]")

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert list(rows[0]) == ["file", "dose", "method", "psnr", "ssim", "mse"]
    assert len(rows) == 3 * 2 * 3  # images × doses × (noisy, NLM, model)
    assert {r["method"] for r in rows} == {"noisy", "nlm", "model"} and {r["dose"] for r in rows} == {"1", "0.1"}
    # The noisy inputs are the data module's test images (same seeds) and the PSNR is scikit-image's.
    files = sorted((data / "test" / "high").iterdir())
    dataset = SimulatedPairDataset(files, PhysicalNoiseModel(), dose=0.1, seed=eval_seed(1234, "test"))
    for i, path in enumerate(files):
        sample = dataset[i]
        expected = peak_signal_noise_ratio(sample["high"][0].numpy(), sample["low"][0].numpy(), data_range=1.0)
        row = next(r for r in rows if r["file"] == path.name and r["dose"] == "0.1" and r["method"] == "noisy")
        assert abs(float(row["psnr"]) - expected) < 0.01
    nlm = [float(r["psnr"]) for r in rows if r["dose"] == "0.1" and r["method"] == "nlm"]
    noisy = [float(r["psnr"]) for r in rows if r["dose"] == "0.1" and r["method"] == "noisy"]
    assert np.mean(nlm) > np.mean(noisy) + 3

    saved = json.loads((out / "summary.json").read_text())
    stat = saved["metrics"]["0.1"]["model"]["psnr"]
    assert (
        set(stat) == {"mean", "std", "n", "ci95"}
        and stat["n"] == 3
        and stat["ci95"][0] < stat["mean"] < stat["ci95"][1]
    )
    assert saved["metrics"]["1"]["noisy"]["psnr"]["mean"] == pytest.approx(
        np.mean([float(r["psnr"]) for r in rows if r["dose"] == "1" and r["method"] == "noisy"]), abs=1e-4
    )
    assert [r["dose"] for r in saved["dose_reduction"]["psnr"]] == [1.0, 0.1]
    assert saved["reference_doses"][0] < 0.1 and saved["reference_doses"][-1] == 8.0
    assert len(saved["checkpoint"]["sha256"]) == 64 and saved["versions"]["scikit-image"] != "not installed"
    assert summary["images"] == 3

    markdown = (out / "report.md").read_text()
    assert "Dose-reduction factor" in markdown and "How it is computed" in markdown
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", markdown)
    assert "figures/curves.png" in figures and "figures/panels_dose_0.1.png" in figures
    assert "figures/flat_dose_0.1.png" in figures and "figures/flat_dose_1.png" in figures
    for figure in figures:
        assert (out / figure).stat().st_size > 10_000
    assert (out / "report.html").is_file() and "<table>" in (out / "report.html").read_text()
    assert (out / "reference.csv").is_file()


def test_paired_report_fits_the_intensity_correction_and_has_no_dose_curves(runs, tmp_path):
    base, _ = runs
    out = tmp_path / "paired"
    summary = run_report(base / "paired", out, "baselines=[nlm]", "html=false", "tta=4")
    assert summary["inputs"] == "paired" and summary["dose_keys"] == ["paired"] and summary["tta"] == 4
    assert summary["affine_fit"]["gain"] == pytest.approx(0.585, abs=0.03)
    assert "dose_reduction" not in summary and (out / "figures" / "panels_paired.png").is_file()
    assert not (out / "figures" / "curves.png").exists() and not (out / "report.html").exists()
    assert summary["metrics"]["paired"]["nlm"]["psnr"]["mean"] > summary["metrics"]["paired"]["noisy"]["psnr"]["mean"]


def test_a_pair_whose_low_image_is_its_high_image_is_left_out_of_the_means_not_written_as_infinity(runs, tmp_path):
    import shutil

    base, data = runs
    root = shutil.copytree(data, tmp_path / "data")
    shutil.copy(root / "test" / "high" / "img_0.png", root / "test" / "low" / "img_0.png")  # PSNR inf
    out = tmp_path / "paired"
    run_report(base / "paired", out, f"data_root={root}", "baselines=[]", "html=false")
    text = (out / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in summary.json"))
    noisy, rows = summary["metrics"]["paired"]["noisy"]["psnr"], list(csv.DictReader((out / "metrics.csv").open()))
    finite = [float(r["psnr"]) for r in rows if r["method"] == "noisy" and r["file"] != "img_0.png"]
    assert noisy["not_finite"] == 1 and noisy["n"] == 2 and noisy["mean"] == pytest.approx(np.mean(finite), abs=1e-3)
    assert summary["differences"]["paired"]["model − noisy"]["psnr"]["not_finite"] == 1
    assert "(1 infinite, left out)" in (out / "report.md").read_text()
    assert mean_ci([float("inf")] * 2) == {"mean": None, "std": None, "n": 0, "ci95": None, "not_finite": 2}


def test_report_errors_name_the_key(runs, tmp_path):
    from datamodules.io.images import write_image
    from datamodules.io.pixels import ImageInfo

    base, _ = runs
    with pytest.raises(ValueError, match="doses must be > 0"):
        run_report(base / "simulated", tmp_path, "doses=[0.5,0]")
    write_image(tmp_path / "clean" / "test" / "a.png", np.full((32, 32), 0.5), ImageInfo(8, ".png"))
    with pytest.raises(FileNotFoundError, match="inputs=paired: .* no high/ and low/"):
        run_report(base / "simulated", tmp_path, f"data_root={tmp_path / 'clean'}", "inputs=paired")
    with pytest.raises(ValueError, match="baselines: 'wiener' is unknown"):
        run_report(base / "simulated", tmp_path, "baselines=[wiener]")


# --- sweep summary ----------------------------------------------------------------------------------


def _job(sweep: Path, number: int, lr: str) -> Path:
    folder = sweep / f"{number}_optim.lr={lr}"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["loss=l1", f"optim.lr={lr}"]))
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": number}}}))
    return folder


def test_sweep_summary_lists_ok_failed_and_unstarted_jobs(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from lightning_modules.report.sweep import summarise_sweep
    from lightning_modules.runs.hydra import JobStatusRecorder

    sweep = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    lrs = ["0.1", "0.01", "0.001", "0.0001", "1e-05"]
    (sweep).mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(
        yaml.safe_dump(
            {
                "hydra": {
                    "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": None},
                    "overrides": {"task": ["loss=l1", "optim.lr=" + ",".join(lrs)]},
                }
            }
        )
    )
    writer = SummaryWriter(str(_job(sweep, 0, lrs[0]) / "tensorboard"))  # ok: test metrics in TensorBoard
    for step, value in enumerate((20.0, 24.0)):
        writer.add_scalar("val/psnr", value, step)
    for tag, value in {"test/psnr": 25.0, "test/psnr_noisy": 15.0, "test/ssim": 0.6, "test/mse": 0.003}.items():
        writer.add_scalar(tag, value, 2)
    writer.close()
    failed = _job(sweep, 1, lrs[1])  # failed: Hydra's callback recorded the exception
    from hydra.core.utils import JobReturn, JobStatus

    job_return = JobReturn(
        overrides=["optim.lr=0.01"], status=JobStatus.FAILED, _return_value=RuntimeError("loss is nan")
    )
    JobStatusRecorder().on_job_end(OmegaConf.create({"hydra": {"runtime": {"output_dir": str(failed)}}}), job_return)
    _job(sweep, 2, lrs[2])  # killed before anything: no status file, no metrics
    done = _job(sweep, 3, lrs[3])  # ok: scripts/test.py results
    writer = SummaryWriter(str(done / "tensorboard"))  # a self-supervised run: picked by the mapped PSNR
    for step, (raw, mapped) in enumerate(((14.0, 25.5), (14.2, 26.1))):
        writer.add_scalar("val/psnr", raw, step)
        writer.add_scalar("val/psnr_mapped", mapped, step)
    writer.close()
    (done / "results").mkdir()
    (done / "results" / "summary.json").write_text(
        json.dumps(
            {
                "metrics": {
                    "psnr": {"mean": 26.0},
                    "ssim": {"mean": 0.7},
                    "mse": {"mean": 0.002},
                    "psnr_noisy": {"mean": 15.0},
                }
            }
        )
    )

    out = tmp_path / "summary"
    result = summarise_sweep(sweep, out)
    by_job = {row["job"]: row for row in result["jobs"]}
    assert [by_job[n]["status"] for n in range(5)] == ["ok", "failed", "failed", "ok", "not started"]
    assert by_job[0]["test/psnr"] == 25.0 and by_job[0]["val/psnr_best"] == 24.0 and by_job[3]["test/psnr"] == 26.0
    assert by_job[3]["val/psnr_best"] == pytest.approx(26.1)
    assert "RuntimeError: loss is nan" in by_job[1]["detail"] and "no job_status.json" in by_job[2]["detail"]
    assert result["counts"] == {"ok": 2, "failed": 2, "interrupted": 0, "not started": 1}
    table = list(csv.DictReader((out / "sweep.csv").open()))
    assert [r["status"] for r in table] == ["ok", "failed", "failed", "ok", "not started"] and "optim.lr" in table[0]
    markdown = (out / "sweep.md").read_text()
    assert markdown.count("**FAILED**") == 2 and "not started" in markdown
    assert (out / "sweep.png").stat().st_size > 10_000 and (out / "sweep.html").is_file()


def test_sweep_summary_shows_a_job_stopped_with_ctrl_c_as_interrupted(tmp_path):
    from lightning_modules.commands.train import _interrupted
    from lightning_modules.report.sweep import summarise_sweep

    sweep = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    stopped = _job(sweep, 0, "0.1")
    (stopped / "run_config.yaml").write_text("test: true\n")
    _interrupted(OmegaConf.create({"paths": {"output_dir": str(stopped)}}), stopped)  # what Ctrl+C writes
    result = summarise_sweep(sweep, tmp_path / "summary", html=False)
    row = result["jobs"][0]
    assert row["status"] == "interrupted" and "interrupted before the first checkpoint" in row["detail"]
    assert result["counts"] == {"ok": 0, "failed": 0, "interrupted": 1, "not started": 0}
    markdown = (tmp_path / "summary" / "sweep.md").read_text()
    assert "**interrupted**" in markdown and "1 interrupted" in markdown


def test_report_reads_bit_depth_itself(runs, tmp_path):
    """report(cfg) with bit_depth=12 scores 12-bit pairs in plain 16-bit PNGs as the same pairs stored
    over 0..65535 (no wrapper in scripts/report.py needed)."""
    from PIL import Image

    base, data = runs
    for source in data.rglob("*.png"):
        twelve = np.rint(np.asarray(Image.open(source)).astype(np.float64) * 4095 / 65535)
        for folder, values in (("plain", twelve), ("full", np.rint(twelve * 65535 / 4095))):
            target = tmp_path / folder / source.relative_to(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(values.astype(np.uint16)).save(target)

    def means(folder, *extra):
        out = tmp_path / "out" / folder / str(len(extra))
        summary = run_report(
            base / "paired", out, f"data_root={tmp_path / folder}", "baselines=[]", "html=false", *extra
        )
        return {k: v["psnr"]["mean"] for k, v in summary["metrics"]["paired"].items()}

    reference, stated = means("full"), means("plain", "bit_depth=12")
    assert stated["noisy"] == pytest.approx(reference["noisy"], abs=0.05)
    assert stated["model"] == pytest.approx(reference["model"], abs=0.05)
