"""Classical baselines: non-local means (scikit-image) and BM3D, after a variance-stabilising transform.

Each baseline is ``denoise(z, sigma) -> z_hat`` for an image ``z`` with additive white Gaussian noise
of standard deviation ``sigma``; :func:`apply_baseline` wraps it in a :class:`Stabiliser` so it works
on a low-dose image in display intensity. BM3D comes from the ``bm3d`` package, licensed for
non-commercial use only, and is an optional extra (``pip install "xray-denoise[bm3d]"``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence

import numpy as np

from lightning_modules.classical.stabilisers import Stabiliser

Denoise = Callable[[np.ndarray, float], np.ndarray]

# Non-local means settings: 5×5 patches searched in a 13×13 window, h = 0.8σ as scikit-image
# recommends for fast_mode with a known σ.
NLM_PATCH_SIZE, NLM_PATCH_DISTANCE, NLM_H_FACTOR = 5, 6, 0.8


def nlm(z: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means (``skimage.restoration.denoise_nl_means``, fast mode) for noise std ``sigma``."""
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(
        z,
        h=NLM_H_FACTOR * sigma,
        sigma=sigma,
        patch_size=NLM_PATCH_SIZE,
        patch_distance=NLM_PATCH_DISTANCE,
        fast_mode=True,
    )


def bm3d_denoise(z: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D (both stages, the package's default profile) for white noise of std ``sigma``."""
    import bm3d

    return np.asarray(bm3d.bm3d(z, sigma_psd=sigma), dtype=np.float64)


BASELINES: dict[str, tuple[str, Denoise]] = {
    "nlm": ("NLM", nlm),
    "bm3d": ("BM3D", bm3d_denoise),
}
LABELS = {"noisy": "noisy input", "model": "model", **{k: v[0] for k, v in BASELINES.items()}}
OPTIONAL_PACKAGE = {"bm3d": "bm3d"}
DESCRIPTIONS = {
    "nlm": (
        f"non-local means (scikit-image `denoise_nl_means`, fast mode, {NLM_PATCH_SIZE}×{NLM_PATCH_SIZE} patches, "
        f"search distance {NLM_PATCH_DISTANCE}, h = {NLM_H_FACTOR}σ, σ known)"
    ),
    "bm3d": "BM3D (`bm3d` package, default profile, hard-thresholding + Wiener stages, σ known)",
}


def select_baselines(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The baselines of ``names`` that can run here, and a note for each one skipped.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    chosen, notes = [], []
    for name in names:
        if name not in BASELINES:
            raise ValueError(f"baselines: {name!r} is unknown; choose from {sorted(BASELINES)}")
        package = OPTIONAL_PACKAGE.get(name)
        if package and importlib.util.find_spec(package) is None:
            notes.append(
                f"{BASELINES[name][0]} skipped: the `{package}` package is not installed "
                f'(pip install "xray-denoise[{name}]"; licensed for non-commercial use only).'
            )
            continue
        chosen.append(name)
    return chosen, notes


def apply_baseline(name: str, noisy: np.ndarray, stabiliser: Stabiliser) -> np.ndarray:
    """Denoise ``noisy`` (display intensity in [0, 1]) with baseline ``name`` inside ``stabiliser``.

    The stabilised image is scaled to [0, 1] before denoising (σ scaled alike), so every denoiser
    sees the value range it is tuned for.
    """
    z = stabiliser.forward(noisy)
    low, high = float(z.min()), float(z.max())
    scale = high - low if high > low else 1.0
    denoised = BASELINES[name][1]((z - low) / scale, stabiliser.sigma / scale)
    return stabiliser.inverse(np.asarray(denoised, dtype=np.float64) * scale + low)
