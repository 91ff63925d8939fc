"""Energy a delivery used, phase by phase, from the vehicle's own battery monitor.

The autopilot integrates current x voltage itself (ArduPilot's AP_BattMonitor consumed_wh, sent as
BATTERY_STATUS.energy_consumed in hJ): that is the figure to compare the prediction with, not one we
integrate from sparse samples. Each increase between two readings is booked to the delivery phase
current at the later reading. Phases use the names of core.calibration.PHASES.
"""

from __future__ import annotations

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem

# monitor phase -> energy phase; "returning" splits into back and landing at the final NAV_LAND
_PHASE = {"preflight": "climb", "taking_off": "climb", "en_route": "out", "at_zone": "drop", "lowering": "drop",
          "released": "drop", "returning": "back"}


OVER_HOME_M = 15.0


class EnergyLog:
    def __init__(self, mission: list[MissionItem]) -> None:
        self._land_seq = max((i for i, it in enumerate(mission) if it.command == C.NAV_LAND), default=None)
        self.start_wh: float | None = None
        self._last_wh: float | None = None
        self.by_phase: dict[str, float] = {}
        self.done = False

    def start(self, consumed_wh: float | None) -> None:
        """At the start of the flight (armed, before the mission starts)."""
        self.start_wh = self._last_wh = consumed_wh

    def update(self, phase: str, mission_seq: int | None, consumed_wh: float | None,
               from_home_m: float | None = None) -> None:
        """from_home_m: the vehicle's distance from the hub; the final NAV_LAND is current for the whole
        last cruise leg, and landing only starts once the vehicle is over the hub."""
        if self.done or consumed_wh is None or self._last_wh is None:
            return
        if phase == "landed":
            self.done = True
            key = "landing"
        else:
            key = _PHASE.get(phase, "back")
            if (key == "back" and self._land_seq is not None and mission_seq is not None
                    and mission_seq >= self._land_seq and (from_home_m is None or from_home_m < OVER_HOME_M)):
                key = "landing"
        delta = consumed_wh - self._last_wh
        if delta < 0:  # the monitor was reset (reboot): the energy since is still energy used
            delta = consumed_wh
        self.by_phase[key] = self.by_phase.get(key, 0.0) + delta
        self._last_wh = consumed_wh

    @property
    def used_wh(self) -> float | None:
        return sum(self.by_phase.values()) if self.start_wh is not None else None
