"""Battery pack: open-circuit voltage from state of charge, sag across the pack
resistance, consumed charge and energy."""

from __future__ import annotations

from .defs import AVIONICS_W

CELLS = 4
R_PACK = 0.048            # ohm, for a REF_PACK_MAH pack; parallel cells divide it, so it scales as 1/capacity
REF_PACK_MAH = 5000.0
SOC_CURVE = [(0.0, 3.30), (0.05, 3.55), (0.10, 3.62), (0.20, 3.68), (0.50, 3.80),
             (0.80, 3.98), (1.0, 4.18)]


class Battery:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

    def update_battery(self, dt: float, computed: bool = False) -> None:
        if not computed:
            self.power_w = AVIONICS_W
        cap = max(self.params["BATT_CAPACITY"], 1.0)
        soc = max(0.0, 1.0 - self.consumed_mah / cap)
        ocv = CELLS * ocv_cell(soc)
        cur = self.power_w / max(ocv, 1.0)
        self.voltage = max(0.0, ocv - cur * R_PACK * REF_PACK_MAH / cap)
        self.current_a = cur
        self.consumed_mah += cur * dt / 3.6
        self.consumed_wh += self.voltage * cur * dt / 3600.0

    def remaining_pct(self) -> int:
        cap = max(self.params["BATT_CAPACITY"], 1.0)
        return max(0, min(100, int(round(100.0 * (1.0 - self.consumed_mah / cap)))))


def ocv_cell(soc: float) -> float:
    soc = min(1.0, max(0.0, soc))
    for (s0, v0), (s1, v1) in zip(SOC_CURVE, SOC_CURVE[1:]):
        if soc <= s1:
            return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
    return SOC_CURVE[-1][1]
