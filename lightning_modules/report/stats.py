"""Statistics of a report: means with 95 % confidence intervals, and the dose-reduction factor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95
CI_METHOD = "95 % Student-t confidence interval of the mean over images (mean ± t(0.975, n−1)·s/√n)"


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean, sample standard deviation, ``n`` and the Student-t confidence interval of the mean.

    With a single value the interval is ``[mean, mean]`` (no spread can be estimated). Non-finite
    values (the PSNR of an input identical to its target is infinite) are left out and counted in
    ``not_finite``, so that ``summary.json`` stays strict JSON; with none left, the mean, std and
    interval are ``None``.
    """
    from scipy.stats import t

    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("mean_ci: no values")
    finite = data[np.isfinite(data)]
    stat: dict[str, Any] = {"mean": None, "std": None, "n": 0, "ci95": None}
    if finite.size:
        mean = float(finite.mean())
        std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
        half = float(t.ppf(0.5 + confidence / 2, finite.size - 1)) * std / math.sqrt(finite.size) if std else 0.0
        stat = {"mean": mean, "std": std, "n": int(finite.size), "ci95": [mean - half, mean + half]}
    if finite.size < data.size:
        stat["not_finite"] = int(data.size - finite.size)
    return stat


@dataclass(frozen=True)
class DoseEquivalent:
    """The dose at which the reference curve reaches a value.

    ``relation`` is ``"="`` inside the reference doses, ``">"`` above the highest reference value and
    ``"<"`` below the lowest; then ``dose`` is extrapolated along the end segment (``extrapolated``)
    and ``bound`` is the reference dose at that end.
    """

    dose: float
    relation: str = "="
    bound: float | None = None

    @property
    def extrapolated(self) -> bool:
        return self.relation != "="

    def text(self, precision: int = 3) -> str:
        if not self.extrapolated:
            return f"{self.dose:.{precision}g}"
        return f"{self.relation} {self.bound:g} (≈ {self.dose:.{precision}g} extrapolated)"


def equivalent_dose(ref_doses: Sequence[float], ref_values: Sequence[float], target: float) -> DoseEquivalent:
    """Dose at which the reference curve ``ref_values(ref_doses)`` equals ``target``.

    Linear interpolation of the value against ``log(dose)`` between the two bracketing reference
    doses. The curve is made non-decreasing first (running maximum over increasing dose), since
    image quality of the unprocessed input can only rise with dose. Outside the reference range the
    end segment is extrapolated and the result says so.
    """
    doses = np.asarray(ref_doses, dtype=np.float64)
    values = np.asarray(ref_values, dtype=np.float64)
    if doses.size < 2 or doses.size != values.size:
        raise ValueError("equivalent_dose: need at least two reference doses with one value each")
    if (doses <= 0).any():
        raise ValueError("equivalent_dose: reference doses must be > 0")
    order = np.argsort(doses)
    doses, values = doses[order], np.maximum.accumulate(values[order])
    log_d = np.log(doses)
    if target > values[-1] or target < values[0]:
        end = slice(-2, None) if target > values[-1] else slice(0, 2)
        (x0, x1), (y0, y1) = log_d[end], values[end]
        slope = (y1 - y0) / (x1 - x0)
        dose = math.exp(x0 + (target - y0) / slope) if slope > 0 else math.inf
        high = target > values[-1]
        return DoseEquivalent(dose, ">" if high else "<", float(doses[-1] if high else doses[0]))
    # First reference point at or above the target; flat stretches resolve to their lowest dose.
    k = int(np.searchsorted(values, target, side="left"))
    if k == 0 or values[k] == target:
        return DoseEquivalent(float(doses[k]))
    x0, x1, y0, y1 = log_d[k - 1], log_d[k], values[k - 1], values[k]
    return DoseEquivalent(float(math.exp(x0 + (target - y0) * (x1 - x0) / (y1 - y0))))
