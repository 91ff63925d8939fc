"""PWM winch (AP_Winch_PWM): relaxed, position and rate control of the line."""

from __future__ import annotations


class Winch:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

    def winch_command(self, action: int, length: float, rate: float) -> bool:
        if not self.winch_enabled:
            return False
        rmax = self.params["WINCH_RATE_MAX"]
        if action == 0:
            self.winch_mode = "relaxed"
            self.winch_rate = 0.0
            self.winch_len_target = None
        elif action == 1:
            self.winch_mode = "position"
            self.winch_len_target = max(0.0, self.winch_len + length)
        elif action == 2:
            self.winch_mode = "rate"
            self.winch_rate = max(-rmax, min(rmax, rate))
            self.winch_len_target = None
        else:
            return False
        return True

    def update_winch(self, dt: float) -> None:
        if not self.winch_enabled:
            return
        rmax = self.params["WINCH_RATE_MAX"]
        if self.winch_mode == "position" and self.winch_len_target is not None:
            err = self.winch_len_target - self.winch_len
            self.winch_rate = max(-rmax, min(rmax, err * self.params["WINCH_POS_P"]))
        elif self.winch_mode == "relaxed":
            self.winch_rate = 0.0
        self.winch_len = max(0.0, self.winch_len + self.winch_rate * dt)
