"""Image-quality measures of medical physics, in plain numpy: noise power spectrum, slanted-edge MTF
and a channelized Hotelling observer (CHO) with Laguerre–Gauss channels.

Each function has one job and works on arrays; :mod:`lightning_modules.report.image_quality_study`
builds the phantoms, runs the methods and assembles the tables. Frequencies are in cycles per pixel
unless a ``pixel`` size is given (then cycles per unit of that size, e.g. per mm).

References: IEC 62220-1-1:2015 (NPS from mean-subtracted ROIs, slanted-edge MTF); Samei et al.,
Med. Phys. 25 (1998) (oversampled edge spread function); Barrett & Myers, *Foundations of Image
Science* (2004), ch. 13–14 (Hotelling observer, Laguerre–Gauss channels); Gallas & Barrett, JOSA A 20
(2003); AAPM TG-233 (2019) (NPS, TTF and detectability in CT).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# --- noise power spectrum -------------------------------------------------------------------------------


def detrend(roi: np.ndarray, order: int = 0) -> np.ndarray:
    """``roi`` minus its mean (``order=0``) or minus its least-squares plane (``order=1``) or quadratic
    surface (``order=2``): the slow background a flat field or a flat body region still has."""
    roi = np.asarray(roi, dtype=np.float64)
    if order == 0:
        return roi - roi.mean()
    if order not in (1, 2):
        raise ValueError(f"detrend order must be 0, 1 or 2, got {order}")
    y, x = np.mgrid[0 : roi.shape[0], 0 : roi.shape[1]]
    y, x = (y - y.mean()) / roi.shape[0], (x - x.mean()) / roi.shape[1]
    terms = [np.ones_like(x), x, y] + ([x * x, x * y, y * y] if order == 2 else [])
    basis = np.stack([t.ravel() for t in terms], axis=1)
    coef, *_ = np.linalg.lstsq(basis, roi.ravel(), rcond=None)
    return roi - (basis @ coef).reshape(roi.shape)


def nps_2d(rois: np.ndarray, pixel: float = 1.0, order: int = 0) -> np.ndarray:
    """The 2-D noise power spectrum, centred (DC in the middle), averaged over ``rois`` (n, N, M).

    ``NPS(u, v) = Δx Δy / (N M) · ⟨|DFT(roi − trend)|²⟩`` (IEC 62220-1), so its integral over
    frequency, ``sum(NPS) · du · dv``, equals the pixel variance (Parseval).
    """
    rois = np.asarray(rois, dtype=np.float64)
    if rois.ndim != 3 or rois.shape[0] < 1:
        raise ValueError(f"nps_2d: rois must be (n, N, M) with n >= 1, got shape {rois.shape}")
    _, rows, cols = rois.shape
    power = np.zeros((rows, cols))
    for roi in rois:
        power += np.abs(np.fft.fft2(detrend(roi, order))) ** 2
    return np.fft.fftshift(power / len(rois)) * pixel * pixel / (rows * cols)


def frequency_grid(shape: tuple[int, int], pixel: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The (fy, fx) frequencies of a centred 2-D spectrum of ``shape``."""
    fy = np.fft.fftshift(np.fft.fftfreq(shape[0], d=pixel))
    fx = np.fft.fftshift(np.fft.fftfreq(shape[1], d=pixel))
    return np.meshgrid(fy, fx, indexing="ij")


def radial_average(nps: np.ndarray, pixel: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The NPS averaged over rings of width ``1/(N·pixel)`` around DC, out to the Nyquist frequency;
    returns (ring centre frequencies, mean NPS in each ring). DC itself is left out."""
    fy, fx = frequency_grid(nps.shape, pixel)
    radius = np.hypot(fy, fx)
    step = 1.0 / (min(nps.shape) * pixel)
    ring = np.rint(radius / step).astype(int)
    last = int(0.5 / pixel / step)
    sums = np.bincount(ring.ravel(), weights=nps.ravel(), minlength=last + 1)[: last + 1]
    counts = np.bincount(ring.ravel(), minlength=last + 1)[: last + 1]
    keep = np.arange(1, last + 1)
    return keep * step, sums[keep] / np.maximum(counts[keep], 1)


def mean_frequency(nps: np.ndarray, pixel: float = 1.0) -> float:
    """The NPS-weighted mean radial frequency ``∫ |f| NPS / ∫ NPS``: the noise texture in one number
    (white noise: about 0.38 cycles/pixel; blotchy, low-pass noise: lower)."""
    fy, fx = frequency_grid(nps.shape, pixel)
    total = float(nps.sum())
    return float((np.hypot(fy, fx) * nps).sum() / total) if total > 0 else math.nan


@dataclass(frozen=True)
class NoiseSpectrum:
    """One NPS: the radial profile, the noise variance (its integral) and the texture frequencies."""

    frequencies: np.ndarray
    radial: np.ndarray
    variance: float
    mean_frequency: float
    peak_frequency: float

    @property
    def std(self) -> float:
        return math.sqrt(max(self.variance, 0.0))


def noise_spectrum(rois: np.ndarray, pixel: float = 1.0, order: int = 0) -> NoiseSpectrum:
    """:func:`nps_2d` of ``rois`` summarised: radial average, variance (``∫∫ NPS du dv``), mean frequency and
    the frequency of the radial NPS's maximum."""
    nps = nps_2d(rois, pixel, order)
    frequencies, radial = radial_average(nps, pixel)
    variance = float(nps.sum() / (nps.shape[0] * pixel * nps.shape[1] * pixel))
    peak = float(frequencies[int(np.argmax(radial))])
    return NoiseSpectrum(frequencies, radial, variance, mean_frequency(nps, pixel), peak)


def tile_rois(image: np.ndarray, size: int, margin: int = 0, overlap: float = 0.5) -> np.ndarray:
    """Square ``size`` ROIs of ``image`` at a stride of ``size·(1 − overlap)``, ``margin`` px from its
    edges (IEC 62220-1 uses half-overlapping ROIs); (n, size, size)."""
    stride = max(1, int(round(size * (1.0 - overlap))))
    rows, cols = image.shape
    tops = range(margin, rows - margin - size + 1, stride)
    lefts = range(margin, cols - margin - size + 1, stride)
    rois = [image[t : t + size, s : s + size] for t in tops for s in lefts]
    if not rois:
        raise ValueError(f"tile_rois: a {rows}×{cols} image holds no {size}-px ROI {margin} px from its edges")
    return np.stack(rois)


# --- slanted-edge MTF ----------------------------------------------------------------------------------


def edge_distance(shape: tuple[int, int], angle_deg: float) -> np.ndarray:
    """Signed distance (px) of each pixel centre from a straight edge through the image centre, tilted
    ``angle_deg`` from the vertical; positive to its right."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    theta = math.radians(angle_deg)
    return (x - (shape[1] - 1) / 2) * math.cos(theta) - (y - (shape[0] - 1) / 2) * math.sin(theta)


def gaussian_edge(distance: np.ndarray, low: float, high: float, blur: float) -> np.ndarray:
    """An edge from ``low`` (left) to ``high`` (right) blurred by a Gaussian of std ``blur`` px,
    sampled at the pixel centres (``blur = 0``: a hard step, half-way on the line)."""
    from scipy.special import ndtr

    step = ndtr(distance / blur) if blur > 0 else (np.sign(distance) + 1.0) / 2.0
    return low + (high - low) * step


def gaussian_mtf(frequencies: np.ndarray, blur: float) -> np.ndarray:
    """The MTF of a Gaussian blur of std ``blur`` px: ``exp(−2π²σ²f²)``."""
    return np.exp(-2.0 * math.pi**2 * blur**2 * np.asarray(frequencies) ** 2)


def edge_spread(
    image: np.ndarray, distance: np.ndarray, bin_width: float = 0.25, half_width: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    """The oversampled edge spread function: pixel values averaged in bins of ``bin_width`` px of
    distance from the edge, over ``[−half_width, half_width]``; empty bins are interpolated."""
    edges = np.arange(-half_width, half_width + bin_width / 2, bin_width)
    centres = (edges[:-1] + edges[1:]) / 2
    index = np.floor((distance.ravel() + half_width) / bin_width).astype(int)
    inside = (index >= 0) & (index < centres.size)
    sums = np.bincount(
        index[inside], weights=np.asarray(image, dtype=np.float64).ravel()[inside], minlength=centres.size
    )
    counts = np.bincount(index[inside], minlength=centres.size)
    filled = counts > 0
    if filled.sum() < 2:
        raise ValueError("edge_spread: fewer than two distance bins hold a pixel")
    esf = np.interp(centres, centres[filled], sums[filled] / counts[filled])
    return centres, esf


def mtf_from_esf(esf: np.ndarray, bin_width: float, max_frequency: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """MTF from an oversampled ESF: central-difference derivative (the LSF), a Tukey window (flat over
    the central half, cosine tapers outside, so the tails' noise is damped but a compact LSF is not), |FFT|
    normalised at zero frequency, divided by the transfer of the binning (sinc) and of the central
    difference, so a known blur is returned unbiased. Frequencies up to ``max_frequency`` cycles/px."""
    from scipy.signal.windows import tukey

    lsf = np.gradient(esf, bin_width) * tukey(esf.size, 0.5)
    if abs(lsf.sum()) < 1e-12:
        raise ValueError("mtf_from_esf: the edge has no contrast (flat edge spread function)")
    padded = max(1024, 1 << int(math.ceil(math.log2(lsf.size))))
    spectrum = np.abs(np.fft.rfft(lsf, n=padded))
    frequencies = np.fft.rfftfreq(padded, d=bin_width)
    mtf = spectrum / spectrum[0]
    angle = 2.0 * math.pi * frequencies * bin_width
    derivative = np.where(angle > 0, np.sin(angle) / np.where(angle > 0, angle, 1.0), 1.0)
    mtf = mtf / (np.sinc(frequencies * bin_width) * derivative)
    keep = frequencies <= max_frequency + 1e-12
    return frequencies[keep], mtf[keep]


def edge_mtf(
    image: np.ndarray,
    distance: np.ndarray,
    bin_width: float = 0.25,
    half_width: float = 12.0,
    max_frequency: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """The slanted-edge MTF of ``image`` whose edge is at the known ``distance`` map (IEC 62220-1 style)."""
    _, esf = edge_spread(image, distance, bin_width, half_width)
    return mtf_from_esf(esf, bin_width, max_frequency)


def mtf_crossing(frequencies: np.ndarray, mtf: np.ndarray, level: float) -> float:
    """The first frequency where the MTF falls to ``level`` (e.g. 0.5: MTF50), interpolated linearly;
    ``nan`` when it stays above ``level`` over the given frequencies."""
    below = np.nonzero(mtf <= level)[0]
    if below.size == 0:
        return math.nan
    k = int(below[0])
    if k == 0:
        return float(frequencies[0])
    f0, f1, m0, m1 = frequencies[k - 1], frequencies[k], mtf[k - 1], mtf[k]
    return float(f0 + (m0 - level) * (f1 - f0) / (m0 - m1))


# --- low-contrast detectability: channelized Hotelling observer --------------------------------------


def disc_profile(size: int, diameter: float, supersample: int = 8) -> np.ndarray:
    """A centred disc of ``diameter`` px in a ``size``×``size`` array, each pixel the covered fraction
    of its area (``supersample``² samples per pixel), peak 1."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    cover = np.zeros((size, size))
    for dy in offsets:
        for dx in offsets:
            cover += np.hypot(y + dy - centre, x + dx - centre) <= diameter / 2
    return cover / supersample**2


def laguerre_gauss_channels(size: int, width: float, count: int = 6) -> np.ndarray:
    """``count`` rotationally symmetric Laguerre–Gauss channels on a ``size``×``size`` ROI,
    ``u_j(r) = (√2/a) exp(−πr²/a²) L_j(2πr²/a²)`` with width ``a`` px (Barrett & Myers 2004, §14.2);
    returned as rows of a (count, size²) matrix."""
    from scipy.special import eval_laguerre

    if width <= 0 or count < 1:
        raise ValueError(f"laguerre_gauss_channels: need width > 0 and count >= 1, got {width}, {count}")
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    r2 = (x - centre) ** 2 + (y - centre) ** 2
    g = 2.0 * math.pi * r2 / width**2
    channels = [math.sqrt(2.0) / width * np.exp(-g / 2.0) * eval_laguerre(j, g) for j in range(count)]
    return np.stack([c.ravel() for c in channels])


def hotelling_template(present: np.ndarray, absent: np.ndarray) -> np.ndarray:
    """The Hotelling template in channel space, ``w = S⁻¹ (v̄₊ − v̄₋)`` with ``S`` the mean of the two
    classes' channel covariances (pseudo-inverse when it is singular), scaled to ``wᵀSw = 1`` so the
    ratings of templates trained on different folds share one scale."""
    covariance = np.atleast_2d((np.cov(present, rowvar=False) + np.cov(absent, rowvar=False)) / 2.0)
    w = np.linalg.pinv(covariance) @ (present.mean(axis=0) - absent.mean(axis=0))
    norm = float(w @ covariance @ w)
    return w / math.sqrt(norm) if norm > 0 else w


def cho_ratings(
    present: np.ndarray, absent: np.ndarray, channels: np.ndarray, folds: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Test ratings of the CHO for matched signal-present / signal-absent ROIs (n, N, N each).

    ``folds`` are disjoint index sets of the pairs: for each fold the template is trained on the other
    pairs and applied to that fold's (hold-out, so no resubstitution bias); the ratings of all folds
    are returned, in pair order.
    """
    # each ROI (n, N, N) projected on each channel (count, N²): (n, count)
    v_present, v_absent = (np.asarray(r, dtype=np.float64).reshape(len(r), -1) @ channels.T for r in (present, absent))
    t_present, t_absent = np.empty(len(present)), np.empty(len(absent))
    everything = np.arange(len(present))
    for test in folds:
        train = np.setdiff1d(everything, test)
        w = hotelling_template(v_present[train], v_absent[train])
        t_present[test], t_absent[test] = v_present[test] @ w, v_absent[test] @ w
    return t_present, t_absent


def two_folds(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random split of ``count`` pairs into two halves: train on one, test on the other, and back."""
    order = rng.permutation(count)
    return [np.sort(order[: count // 2]), np.sort(order[count // 2 :])]


def auc(present: np.ndarray, absent: np.ndarray) -> float:
    """Area under the ROC curve: the Mann–Whitney probability that a present rating beats an absent one
    (ties count one half)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([present, absent]))
    n_p, n_a = len(present), len(absent)
    return float((ranks[:n_p].sum() - n_p * (n_p + 1) / 2) / (n_p * n_a))


def d_prime(present: np.ndarray, absent: np.ndarray) -> float:
    """Detectability index ``(t̄₊ − t̄₋) / sqrt((σ₊² + σ₋²)/2)`` of the ratings."""
    spread = math.sqrt((np.var(present, ddof=1) + np.var(absent, ddof=1)) / 2.0)
    return float((np.mean(present) - np.mean(absent)) / spread) if spread > 0 else math.inf


def bootstrap_pairs(
    present: np.ndarray,
    absent: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    rng: np.random.Generator,
    resamples: int = 1000,
) -> np.ndarray:
    """``statistic`` on ``resamples`` bootstrap resamples of the matched pairs (a pair's present and
    absent ratings drawn together)."""
    count = len(present)
    draws = rng.integers(0, count, size=(resamples, count))
    return np.array([statistic(present[d], absent[d]) for d in draws])


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of bootstrap ``values`` (non-finite ones dropped)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - confidence) / 2.0
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100.0 - tail))
