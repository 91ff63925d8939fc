"""Servo gripper (AP_Gripper, AP_Gripper_Servo) and where the parcel is."""

from __future__ import annotations

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from . import geo
from .defs import PARCEL_HANG_M

M = mavlink
PARCEL_REACH_M = 0.25


class Gripper:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

    @property
    def gripper_valid(self) -> bool:
        if not (self.grip_backend and self.params["GRIP_ENABLE"]):
            return False
        # AP_Gripper_Servo::valid needs an output with SERVOn_FUNCTION=28
        return any(self.params[f"SERVO{ch}_FUNCTION"] == 28 for ch in range(1, 17))

    def gripper_grab(self) -> None:
        if not self.gripper_valid:
            return  # enabled but no backend (not rebooted) or no servo output: acked, does nothing
        if self.grip_state == "grabbing":
            return  # AP_Gripper_Servo::grab: already closing, says nothing
        if self.grip_state == "grabbed":
            self.text(M.MAV_SEVERITY_INFO, "Gripper load grabbed")
            return
        self.grip_state = "grabbing"
        self.grip_pwm = int(self.params["GRIP_GRAB"])
        self.grip_t = self.now
        self.text(M.MAV_SEVERITY_INFO, "Gripper load grabbing")

    def gripper_release(self) -> None:
        if not self.gripper_valid:
            return
        if self.grip_state == "releasing":
            return
        if self.grip_state == "released":
            self.text(M.MAV_SEVERITY_INFO, "Gripper load released")
            return
        self.grip_state = "releasing"
        self.grip_pwm = int(self.params["GRIP_RELEASE"])
        self.grip_t = self.now
        self.text(M.MAV_SEVERITY_INFO, "Gripper load releasing")

    def update_gripper(self) -> None:
        # AP_Gripper_Servo: SERVO_ACTUATION_TIME 500 ms before the state is reached
        if self.grip_state == "grabbing" and self.now - self.grip_t >= 0.5:
            self.grip_state = "grabbed"
            self.text(M.MAV_SEVERITY_INFO, "Gripper load grabbed")
            if self.opts.payload_kg > 0 and self._parcel_reachable():
                self.parcel_attached = True
                self.parcel_pos = None
        elif self.grip_state == "releasing" and self.now - self.grip_t >= 0.5:
            self.grip_state = "released"
            self.text(M.MAV_SEVERITY_INFO, "Gripper load released")
            if self.parcel_attached and not self.opts.gripper_jam:
                self.parcel_attached = False
                self.parcel_pos = (self.n, self.e, max(self.ground_h(self.n, self.e),
                                                       self.parcel_bottom()))

    def _parcel_reachable(self) -> bool:
        if self.parcel_pos is None:
            # loaded on the ground before the flight: the closing jaws still catch it while the
            # airframe has not yet risen more than a hand's breadth off it (a takeoff started
            # inside the 0.5 s actuation time)
            return self.h - self.ground_h(self.n, self.e) <= PARCEL_REACH_M
        pn, pe, ph = self.parcel_pos
        return geo.dist(self.n, self.e, pn, pe) < 1.0 and abs(self.parcel_bottom() - ph) < 0.5

    def parcel_bottom(self) -> float:
        return self.h - PARCEL_HANG_M - (self.winch_len if self.winch_enabled else 0.0)
