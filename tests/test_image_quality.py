"""Image-quality measures (NPS, slanted-edge MTF, CHO detectability) and the report's section."""

import csv
import math

import numpy as np
import pytest
from conftest import PHYSICAL_NOISE, make_paired_dataset, run_report, smooth_image, write_untrained_run
from omegaconf import OmegaConf

from datamodules.noise import PhysicalNoiseModel
from lightning_modules.report import image_quality as iq
from lightning_modules.report.image_quality_report import settings_from_config, table_rows
from lightning_modules.report.image_quality_study import (
    NOISY,
    Background,
    Settings,
    Timer,
    measure_image_quality,
    measure_mtf,
    roi_corners,
)


class NoNoise:
    """A noise model that returns the clean image: the identity acquisition."""

    def simulate(self, clean, dose=1.0, generator=None):
        return clean.clone()


def identity(noisy: np.ndarray, dose: float) -> np.ndarray:
    return noisy


def backgrounds(count: int, size: int = 96, roi: int = 24) -> list[Background]:
    rng = np.random.default_rng(7)
    found = []
    for k in range(count):
        clean = 0.3 + 0.4 * smooth_image(rng, size, size).astype(np.float64)  # in [0.34, 0.66]
        found.append(Background(f"bg{k}", clean, roi_corners(clean, roi, (0.1, 0.9))))
    return found


def small_settings(**overrides) -> Settings:
    values = dict(
        doses=(1.0, 0.25, 0.05),
        seed=3,
        nps_image=64,
        nps_images=1,
        nps_roi=32,
        edge_image=(96, 48),
        edge_realisations=1,
        images=6,
        roi_size=24,
        sizes=(6.0,),
        contrasts=(0.05,),
        bootstrap=200,
    )
    values.update(overrides)
    return Settings(**values)


# --- NPS ----------------------------------------------------------------------------------------------


def test_white_noise_has_a_flat_nps_whose_integral_is_its_variance():
    sigma = 0.04
    rois = np.random.default_rng(0).normal(0.5, sigma, size=(64, 64, 64))
    spectrum = iq.noise_spectrum(rois)
    assert spectrum.variance == pytest.approx(sigma**2, rel=0.03)
    assert spectrum.std == pytest.approx(sigma, rel=0.02)
    # Flat: every ring beyond the first few (few bins) within 10 % of σ², low and high halves alike.
    rings = spectrum.radial[4:]
    assert np.all(np.abs(rings / sigma**2 - 1) < 0.10), rings / sigma**2
    half = len(spectrum.radial) // 2
    assert spectrum.radial[:half].mean() == pytest.approx(spectrum.radial[half:].mean(), rel=0.05)
    assert spectrum.mean_frequency == pytest.approx(0.38, abs=0.01)  # white noise over the Nyquist square


def test_low_pass_noise_has_a_lower_mean_frequency():
    from scipy.ndimage import gaussian_filter

    rois = np.random.default_rng(1).normal(0, 1, size=(16, 64, 64))
    smooth = np.stack([gaussian_filter(r, 1.5, mode="wrap") for r in rois])
    white, blotchy = iq.noise_spectrum(rois), iq.noise_spectrum(smooth)
    assert blotchy.mean_frequency < 0.5 * white.mean_frequency and blotchy.peak_frequency < 0.1
    assert blotchy.variance == pytest.approx(float(smooth.var()), rel=0.02)


# --- slanted-edge MTF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("blur", [0.6, 0.8, 1.5])
def test_identity_on_a_gaussian_edge_returns_the_gaussian_mtf(blur):
    distance = iq.edge_distance((256, 64), 3.0)
    frequencies, mtf = iq.edge_mtf(iq.gaussian_edge(distance, 0.3, 0.5, blur), distance)
    expected = iq.gaussian_mtf(frequencies, blur)
    useful = expected >= 0.05  # up to where 5 % of the modulation is left (or Nyquist)
    assert frequencies[useful].max() > min(0.3, 0.38 / blur)
    assert np.max(np.abs(mtf[useful] - expected[useful])) < 0.02
    mtf50 = math.sqrt(math.log(2) / (2 * math.pi**2)) / blur
    assert iq.mtf_crossing(frequencies, mtf, 0.5) == pytest.approx(mtf50, rel=0.02)
    mtf10 = math.sqrt(math.log(10) / (2 * math.pi**2)) / blur
    if mtf10 < 0.5:
        assert iq.mtf_crossing(frequencies, mtf, 0.1) == pytest.approx(mtf10, rel=0.02)


def test_the_study_measures_the_phantom_blur_through_an_identity_acquisition():
    settings = small_settings(edge_blur=0.8, edge_steps=(0.2, 0.04))
    result = measure_mtf(settings, NoNoise(), {NOISY: identity}, Timer())
    analytic = math.sqrt(math.log(2) / (2 * math.pi**2)) / 0.8
    for step, by_dose in result.items():
        assert by_dose["phantom"].mtf50 == pytest.approx(analytic, rel=0.02)
        for dose in settings.all_doses:
            assert by_dose[dose][NOISY].mtf50 == pytest.approx(analytic, rel=0.02), (step, dose)


# --- CHO detectability ------------------------------------------------------------------------------------


def test_laguerre_gauss_channels_are_orthonormal():
    channels = iq.laguerre_gauss_channels(64, 8.0, 6)
    gram = channels @ channels.T
    assert np.allclose(gram, np.eye(6), atol=0.02)


def test_auc_and_d_prime_of_known_ratings():
    rng = np.random.default_rng(0)
    absent, present = rng.normal(0, 1, 20_000), rng.normal(1.5, 1, 20_000)
    assert iq.d_prime(present, absent) == pytest.approx(1.5, abs=0.03)
    assert iq.auc(present, absent) == pytest.approx(0.8556, abs=0.01)  # Φ(d′/√2)
    assert iq.auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5


def test_zero_contrast_signal_gives_an_auc_interval_containing_one_half():
    settings = small_settings(contrasts=(0.0,), doses=(1.0, 0.1))
    result = measure_image_quality(settings, PhysicalNoiseModel(), {NOISY: identity}, backgrounds(6))
    for dose, by_method in result.detection[(6.0, 0.0)].items():
        found = by_method[NOISY]
        assert found.auc_ci[0] <= 0.5 <= found.auc_ci[1], (dose, found.auc, found.auc_ci)
        assert found.d_prime_ci[0] <= 0.0 <= found.d_prime_ci[1]


def test_noisy_d_prime_rises_with_dose_and_the_equal_dose_of_the_input_is_one():
    settings = small_settings(doses=(1.0, 0.25, 0.05))
    result = measure_image_quality(settings, PhysicalNoiseModel(), {NOISY: identity}, backgrounds(6))
    by_dose = result.detection[(6.0, 0.05)]
    d = [by_dose[dose][NOISY].d_prime for dose in (0.05, 0.25, 1.0)]
    assert d[0] < d[1] < d[2] and d[2] > 1.5, d
    assert by_dose[1.0][NOISY].auc_ci[0] > by_dose[0.05][NOISY].auc_ci[1]  # clearly separated
    equal = result.equal_detectability[(6.0, 0.05)][NOISY]
    assert equal.dose == pytest.approx(1.0) and equal.relation == "="


def test_a_smoothing_method_lowers_noise_and_resolution():
    from scipy.ndimage import gaussian_filter

    def smooth(noisy, dose):
        return np.stack([gaussian_filter(image, 1.0) for image in noisy])

    settings = small_settings(doses=(1.0,))
    result = measure_image_quality(settings, PhysicalNoiseModel(), {NOISY: identity, "smooth": smooth}, backgrounds(3))
    nps = result.nps[1.0]
    assert nps["smooth"].std < 0.5 * nps[NOISY].std and nps["smooth"].mean_frequency < nps[NOISY].mean_frequency
    assert result.mtf[0.2][1.0]["smooth"].mtf50 < 0.8 * result.mtf[0.2][1.0][NOISY].mtf50


def test_same_seed_same_results_other_seed_other_noise():
    def run(seed):
        settings = small_settings(seed=seed, doses=(1.0, 0.25))
        return table_rows(
            measure_image_quality(settings, PhysicalNoiseModel(), {NOISY: identity}, backgrounds(3)), None
        )

    first, again, other = run(5), run(5), run(6)
    assert first == again
    assert first != other


def test_settings_come_from_the_config_and_unknown_keys_are_named():
    node = OmegaConf.create({"enabled": True, "doses": None, "sizes": [4, 8], "edge": {"image": [128, 64]}})
    settings = settings_from_config(node, [1.0, 0.1])
    assert settings.doses == (1.0, 0.1) and settings.sizes == (4.0, 8.0) and settings.edge_image == (128.0, 64.0)
    assert settings_from_config(OmegaConf.create({"enabled": False}), [1.0]) is None
    with pytest.raises(ValueError, match="image_quality.edge.width is unknown"):
        settings_from_config(OmegaConf.create({"enabled": True, "edge": {"width": 3}}), [1.0])
    with pytest.raises(ValueError, match="image_quality.sizes"):
        settings_from_config(OmegaConf.create({"enabled": True, "sizes": [40]}), [1.0])


# --- in the report ------------------------------------------------------------------------------------------


def test_report_writes_the_image_quality_section(tmp_path):
    data = make_paired_dataset(tmp_path / "data", {"train": 1, "test": 2})
    data_cfg = {
        "_target_": "datamodules.datamodule.SimulatedDataModule",
        "root": str(data),
        "noise": PHYSICAL_NOISE,
        "dose": [0.05, 1.0],
        "seed": 1,
    }
    run = write_untrained_run(tmp_path / "run", data_cfg)
    out = tmp_path / "report"
    summary = run_report(
        run,
        out,
        "html=false",
        "doses=[1.0,0.1]",
        "baselines=[nlm]",
        "image_quality.enabled=true",
        "image_quality.images=2",
        "image_quality.roi_size=16",
        "image_quality.sizes=[4]",
        "image_quality.contrasts=[0.05]",
        "image_quality.bootstrap=50",
        "image_quality.nps.image=64",
        "image_quality.nps.roi=32",
        "image_quality.nps.images=1",
        "image_quality.edge.image=[96,48]",
        "image_quality.edge.realisations=1",
    )

    for name in ("nps", "mtf", "detectability"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
    rows = list(csv.DictReader((out / "image_quality.csv").open()))
    methods = {"noisy", "nlm", "model"}
    assert {r["method"] for r in rows} == methods | {"phantom"}
    measures = {(r["method"], r["dose"], r["measure"]) for r in rows}
    for method in methods:
        for dose in ("1", "0.1"):
            for measure in ("noise_std", "nps_mean_frequency", "mtf50", "mtf10", "auc", "d_prime"):
                assert (method, dose, measure) in measures, (method, dose, measure)
        assert (method, "", "dose_equal_d_prime") in measures and (method, "", "dose_equal_psnr") in measures
    assert all(r["relation"] in ("=", "<", ">") for r in rows if r["measure"].startswith("dose_equal"))

    def value(method, dose, measure):
        return [float(r["value"]) for r in rows if (r["method"], r["dose"], r["measure"]) == (method, dose, measure)]

    assert 0.0 < value("noisy", "1", "noise_std")[0] < value("noisy", "0.1", "noise_std")[0] < 0.2
    assert value("nlm", "0.1", "noise_std")[0] < value("noisy", "0.1", "noise_std")[0]
    for r in rows:
        if r["measure"] == "auc":
            assert 0.0 <= float(r["value"]) <= 1.0 and float(r["ci95_low"]) <= float(r["value"]) <= float(
                r["ci95_high"]
            )
        if r["measure"] == "mtf50" and r["condition"] == "edge step 0.2" and r["method"] in ("phantom", "noisy"):
            assert 0.15 < float(r["value"]) < 0.35, r  # the phantom's blur: 0.234 cycles/pixel
    assert summary["image_quality"]["rois"] == 18  # two 64² images, a 3×3 grid of 16-px ROIs 4 px in
    markdown = (out / "report.md").read_text()
    assert "## Diagnostic image quality" in markdown and "figures/detectability.png" in markdown
    assert (out / "image_quality.md").read_text().startswith("## Diagnostic image quality")
