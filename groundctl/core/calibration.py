"""What flown flights teach the energy model: a factor on its prediction and a margin for its scatter.

Every flight that lands records the energy the model predicted for it (before any calibration) and
the energy the vehicle's own battery monitor says it used. For an airframe, flown by one kind of
vehicle (the built-in simulator, ArduPilot SITL or a real aircraft: three different machines that
share a name), the calibration is

- factor: sum(used) / sum(predicted) over its recent flights (energy-weighted, so a short hop does
  not count as much as a long trip); the verdict multiplies the model's prediction by it;
- margin: extra energy held back on top of the calibrated prediction for what the factor does not
  explain. With ten or more flights it is the 95th percentile of used / (factor x predicted), less
  one; before that it shrinks linearly from the uncalibrated margin towards that figure, because three
  flights cannot show a 95th percentile. Never under MIN_MARGIN.

An airframe with no flights uses factor 1 and UNCALIBRATED_MARGIN, and the verdict says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

UNCALIBRATED_MARGIN = 0.15  # what out-of-the-box prediction is held to against the simulator
MIN_MARGIN = 0.05
FULL_CONFIDENCE_FLIGHTS = 10
RECENT_FLIGHTS = 30  # an airframe ages (props, battery): older flights stop counting
# a ratio outside this is not a model error but a broken record (battery swapped mid-flight, monitor reset)
PLAUSIBLE_RATIO = (0.3, 4.0)
PHASES = ("climb", "out", "drop", "back", "landing")


@dataclass(frozen=True)
class FlightEnergy:
    """One flown flight's energy: the uncalibrated model's prediction and what the battery said."""

    airframe: str
    vehicle_kind: str  # "sim" | "sitl" | "vehicle"
    predicted_wh: float
    used_wh: float
    phases: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # phase -> (predicted, used)

    @property
    def ratio(self) -> float:
        return self.used_wh / self.predicted_wh

    @property
    def plausible(self) -> bool:
        return self.predicted_wh > 0 and self.used_wh > 0 and PLAUSIBLE_RATIO[0] <= self.ratio <= PLAUSIBLE_RATIO[1]


@dataclass(frozen=True)
class Calibration:
    airframe: str
    vehicle_kind: str
    flights: int
    factor: float
    margin: float  # fraction of the calibrated prediction held back for the model's scatter
    ratios: tuple[float, ...] = ()
    ignored: int = 0

    @property
    def calibrated(self) -> bool:
        return self.flights > 0

    @property
    def error(self) -> float | None:
        """Mean absolute error of the uncalibrated model over these flights (0.2 = 20 %)."""
        return float(np.mean(np.abs(np.array(self.ratios) - 1.0))) if self.ratios else None

    def describe(self) -> str:
        if not self.calibrated:
            return (f"uncalibrated: no flown {self.vehicle_kind} flights of {self.airframe!r} yet; the model is "
                    f"used as it is with a {self.margin:.0%} margin")
        err = self.error
        return (f"calibrated on {self.flights} {self.vehicle_kind} flight{'s' * (self.flights != 1)}: used "
                f"{self.factor:.2f} x the model (model error {err:.0%} before calibration), margin {self.margin:.0%}")

    def to_dict(self) -> dict:
        err = self.error
        return {"airframe": self.airframe, "vehicle_kind": self.vehicle_kind, "flights": self.flights,
                "calibrated": self.calibrated, "factor": round(self.factor, 4), "margin": round(self.margin, 4),
                "model_error": round(err, 4) if err is not None else None, "ignored_flights": self.ignored,
                "source": self.describe()}


def uncalibrated(airframe: str, vehicle_kind: str = "vehicle") -> Calibration:
    return Calibration(airframe, vehicle_kind, 0, 1.0, UNCALIBRATED_MARGIN)


def calibrate(airframe: str, vehicle_kind: str, flights: Iterable[FlightEnergy]) -> Calibration:
    """The calibration from flights in the order they were flown (only this airframe and kind count)."""
    mine = [f for f in flights if f.airframe == airframe and f.vehicle_kind == vehicle_kind]
    good = [f for f in mine if f.plausible][-RECENT_FLIGHTS:]
    ignored = sum(1 for f in mine if not f.plausible)
    if not good:
        return Calibration(airframe, vehicle_kind, 0, 1.0, UNCALIBRATED_MARGIN, ignored=ignored)
    pred = np.array([f.predicted_wh for f in good])
    used = np.array([f.used_wh for f in good])
    factor = float(used.sum() / pred.sum())
    scatter = used / (factor * pred)
    observed = max(0.0, float(np.percentile(scatter, 95)) - 1.0)
    n = len(good)
    w = min(1.0, n / FULL_CONFIDENCE_FLIGHTS)
    margin = max(MIN_MARGIN, w * observed + (1.0 - w) * max(UNCALIBRATED_MARGIN, observed))
    return Calibration(airframe, vehicle_kind, n, factor, margin, tuple(float(r) for r in used / pred), ignored)


def phase_table(flights: Sequence[FlightEnergy]) -> dict[str, dict[str, float | None]]:
    """Per phase: predicted and used energy summed over flights that measured it."""
    out: dict[str, dict[str, float | None]] = {}
    for ph in PHASES:
        pairs = [f.phases[ph] for f in flights if ph in f.phases and None not in f.phases[ph]]
        p = sum(a for a, _ in pairs)
        u = sum(b for _, b in pairs)
        out[ph] = {"predicted_wh": round(p, 2) if pairs else None, "used_wh": round(u, 2) if pairs else None,
                   "ratio": round(u / p, 3) if pairs and p > 0 else None}
    return out
