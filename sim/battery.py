"""Battery pack: open-circuit voltage from the state of charge, sag across the pack resistance,
charge and energy drawn at the terminals, and less usable capacity in the cold.

What the autopilot reports (as ArduPilot's analog monitor does): consumed mAh counted from the
current, remaining % = 1 - consumed mAh / BATT_CAPACITY, consumed energy = the integral of terminal
voltage x current. What the autopilot does not know: in the cold the pack holds less than
BATT_CAPACITY, so its voltage collapses sooner while the percentage still looks healthy.

Cold derating (COLD_CAPACITY): fraction of the rated capacity a lithium-ion/LiPo pack delivers at
about 1C when it starts at the ambient temperature. The points are a rounded reading of the
low-temperature discharge results for commercial Li-ion cells in Zhang, Xu & Jow, "The low
temperature performance of Li-ion batteries", J. Power Sources 115 (2003) 137-140, and
Jaguemont, Boulon & Dube, "A comprehensive review of lithium-ion batteries used in hybrid and
electric vehicles at cold temperatures", Applied Energy 164 (2016) 99-114: a few per cent lost at
10 degC, about 10 % at 0 degC, 20 % at -10 degC, a third at -20 degC, more than half at -30 degC.
No credit is taken for the pack warming itself in flight.
"""

from __future__ import annotations

CELLS = 4
R_PACK = 0.048            # ohm, for a REF_PACK_MAH pack; parallel cells divide it, so it scales as 1/capacity
REF_PACK_MAH = 5000.0
# open-circuit volts per cell against the true state of charge; below 0 the pack is flat and
# the voltage falls away (what trips BATT_LOW_VOLT / BATT_CRT_VOLT on a cold pack)
SOC_CURVE = [(-0.10, 2.80), (0.0, 3.30), (0.05, 3.55), (0.10, 3.62), (0.20, 3.68), (0.50, 3.80),
             (0.80, 3.98), (1.0, 4.18)]
COLD_CAPACITY = [(-30.0, 0.45), (-20.0, 0.65), (-10.0, 0.80), (0.0, 0.90), (10.0, 0.97),
                 (20.0, 1.0)]


def _interp(points, x: float) -> float:
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def ocv_cell(soc: float) -> float:
    return _interp(SOC_CURVE, min(1.0, soc))


def cold_capacity_factor(temp_c: float) -> float:
    """Usable fraction of the rated capacity at this pack temperature."""
    return _interp(COLD_CAPACITY, temp_c)


def terminal_current(ocv: float, r: float, power_w: float) -> float:
    """Current that delivers power_w at the terminals: P = (OCV - I R) I. Beyond the pack's
    maximum power (OCV^2 / 4R) it gives the current of that maximum."""
    if power_w <= 0.0 or ocv <= 0.0:
        return 0.0
    disc = ocv * ocv - 4.0 * r * power_w
    if disc <= 0.0:
        return ocv / (2.0 * r)
    return (ocv - disc ** 0.5) / (2.0 * r)


class Battery:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

    def update_battery(self, dt: float, computed: bool = False) -> None:
        if not computed:
            self.power_w = self.idle_power_w()
        cap = max(self.params["BATT_CAPACITY"], 1.0)
        usable = cap * self.capacity_factor
        soc = 1.0 - self.consumed_mah / usable
        ocv = CELLS * ocv_cell(soc)
        r = R_PACK * REF_PACK_MAH / cap
        cur = terminal_current(ocv, r, self.power_w)
        self.voltage = max(0.0, ocv - cur * r)
        self.current_a = cur
        self.consumed_mah += cur * dt / 3.6
        self.consumed_wh += self.voltage * cur * dt / 3600.0

    def remaining_pct(self) -> int:
        cap = max(self.params["BATT_CAPACITY"], 1.0)
        return max(0, min(100, int(round(100.0 * (1.0 - self.consumed_mah / cap)))))
