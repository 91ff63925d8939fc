"""Multicopter flight model: a kinematic position controller, ground and parcel
contact, the land detector, thrust and attitude from the forces, and the power
drawn from the battery (sim/power.py: blade-element momentum theory)."""

from __future__ import annotations

import math

from . import geo
from .defs import G, LAND, PARCEL_HANG_M, RTL, SMART_RTL
from .power import electrical_power_w

AIRSPEED_MAX = 22.0       # what the airframe can hold against wind


class Physics:
    """Mixin of sim.vehicle.Vehicle; methods use the vehicle's state through self."""

    def physics(self, dt: float) -> None:
        p = self.params
        airframe = self.airframe.mass_kg
        carried = self.opts.payload_kg if self.parcel_attached else 0.0
        gh = self.ground_h(self.n, self.e)
        # may the motors produce lift at all?
        flying_allowed = self.armed and (self.auto_armed or self.mode in (LAND, RTL, SMART_RTL)
                                          or not self.land_complete)
        acc_xy = max(p["WPNAV_ACCEL"] / 100.0, 0.5)
        acc_z = max(p["WPNAV_ACCEL_Z"] / 100.0, 0.5)
        wind_n, wind_e = self.wind()
        # a paused vehicle holds where it stopped; the mission target is kept for resume
        tgt = self.tgt if self.paused_at is None else self.paused_at
        # horizontal
        tvn = tve = 0.0
        if flying_allowed and not self.land_complete and tgt is not None:
            dn, de = tgt[0] - self.n, tgt[1] - self.e
            d = math.hypot(dn, de)
            if d > 0.01:
                un, ue = dn / d, de / d
                v = min(self.speed_xy, math.sqrt(2 * acc_xy * d), d * 1.5)
                # the airframe cannot exceed AIRSPEED_MAX through the air
                uw = un * wind_n + ue * wind_e
                wsq = wind_n ** 2 + wind_e ** 2
                disc = AIRSPEED_MAX ** 2 - wsq + uw * uw
                vmax = uw + math.sqrt(disc) if disc > 0 else 0.5
                v = max(0.0, min(v, vmax))
                tvn, tve = un * v, ue * v
                if v > 1.0:
                    self.yaw = math.degrees(math.atan2(ue, un)) % 360
        dvn, dve = tvn - self.vn, tve - self.ve
        dv = math.hypot(dvn, dve)
        lim = acc_xy * dt
        if dv > lim:
            dvn, dve = dvn * lim / dv, dve * lim / dv
        self.vn += dvn
        self.ve += dve
        # vertical
        tvu = 0.0
        if flying_allowed:
            if self.vu_cmd is not None:
                tvu = self.vu_cmd
            elif tgt is not None and tgt[2] is not None:
                dh = tgt[2] - self.h
                spd = self.speed_up if dh > 0 else self.speed_dn
                tvu = math.copysign(min(spd, math.sqrt(2 * acc_z * abs(dh)), abs(dh) * 2.0), dh)
        # vu_des is the controller's desired climb rate; it keeps asking for the
        # descent even while something underneath stops the aircraft
        if not flying_allowed:
            self.vu_des = 0.0
        self.vu_des += max(-acc_z * dt, min(acc_z * dt, tvu - self.vu_des))
        dvu = self.vu_des - self.vu
        self.vu = self.vu_des
        h_before = self.h
        self.n += self.vn * dt
        self.e += self.ve * dt
        self.h += self.vu * dt
        # contact with the ground / obstacle / parcel under the aircraft
        floor = gh
        parcel_supported = False
        if self.parcel_attached:
            parcel_supported = self.parcel_bottom() <= gh + 0.001
            if (not self.winch_enabled or self.winch_len < 0.01) and h_before >= gh + PARCEL_HANG_M - 0.01:
                floor = gh + PARCEL_HANG_M  # coming down: the held parcel touches first
        blocked = False
        if self.h <= floor:
            self.h = floor
            if self.vu < 0:
                self.vu = 0.0
            blocked = tvu < 0 or not flying_allowed
        # land detector: about a second resting on something with nothing climbing
        if self.h <= floor + 0.001 and blocked:
            if self.land_maybe_t == 0.0:
                self.land_maybe_t = self.now
            if self.now - self.land_maybe_t >= 1.0 and not self.land_complete:
                self.land_complete = True
                self.vn = self.ve = self.vu = 0.0
        else:
            self.land_maybe_t = 0.0
            if self.land_complete and flying_allowed and tvu > 0:
                self.land_complete = False
                if self.takeoff_time is None:
                    self.takeoff_time = self.now
        if self.land_complete:
            self.vn = self.ve = 0.0
            if not (flying_allowed and tvu > 0):
                self.vu_des = 0.0
        # forces -> thrust, attitude, power
        mass_lifted = airframe + (0.0 if parcel_supported else carried)
        air_n, air_e = self.vn - wind_n, self.ve - wind_e
        va = math.hypot(air_n, air_e)
        drag = 0.5 * self.rho * self.airframe.drag_area_m2 * va * va
        fn = mass_lifted * dvn / dt + (drag * air_n / va if va > 0.01 else 0.0)
        fe = mass_lifted * dve / dt + (drag * air_e / va if va > 0.01 else 0.0)
        fz = mass_lifted * (G + max(-0.8 * G, min(2.0 * G, dvu / dt)))
        t_max = (airframe + 2.0) * G * 2.0
        if not self.armed:
            thrust_n = 0.0
        elif self.land_complete:
            thrust_n = 0.1 * fz  # spun up at ground idle
        else:
            if blocked:
                # resting on the parcel or the ground: the descent controller keeps
                # pushing down, so thrust winds down below what hovering needs
                fz *= max(0.2, 1.0 - 0.8 * self._blocked_time(True))
            else:
                self._blocked_time(False)
            thrust_n = math.sqrt(fn * fn + fe * fe + fz * fz)
        thrust_n = max(0.0, thrust_n)
        self.thrust = min(1.0, thrust_n / t_max)
        if self.armed and not self.land_complete:
            tilt_n, tilt_e = fn / max(fz, 1.0), fe / max(fz, 1.0)
            yr = math.radians(self.yaw)
            fwd = tilt_n * math.cos(yr) + tilt_e * math.sin(yr)
            right = -tilt_n * math.sin(yr) + tilt_e * math.cos(yr)
            self.pitch = -math.atan(fwd)
            self.roll = math.atan(right)
        else:
            self.pitch = self.roll = 0.0
        if self.armed:
            self.power_w = electrical_power_w(self.airframe, self.rho, thrust_n,
                                              *self._rotor_air(fn, fe, fz, air_n, air_e))
        else:
            self.power_w = self.idle_power_w()
        self.update_battery(dt, computed=True)

    def idle_power_w(self) -> float:
        """Disarmed: avionics only."""
        return electrical_power_w(self.airframe, self.rho, 0.0, 0.0, 0.0)

    def _rotor_air(self, fn: float, fe: float, fz: float, air_n: float, air_e: float):
        """Air speed of the rotors in their own plane and along their axis: the disk is normal
        to the thrust; moving along the thrust (climbing, or tilted into the drag) costs power."""
        f = math.sqrt(fn * fn + fe * fe + fz * fz)
        if f < 1e-6 or self.land_complete:
            return 0.0, 0.0
        un, ue, uz = fn / f, fe / f, fz / f
        vz = self.vu
        axial = air_n * un + air_e * ue + vz * uz
        pn, pe, pz = air_n - axial * un, air_e - axial * ue, vz - axial * uz
        return math.sqrt(pn * pn + pe * pe + pz * pz), axial

    def _blocked_time(self, blocked: bool) -> float:
        if not blocked:
            self._blocked_since = None
            return 0.0
        if self._blocked_since is None:
            self._blocked_since = self.now
        return self.now - self._blocked_since

    def wind(self) -> tuple[float, float]:
        spd = self.params["SIM_WIND_SPD"]
        if spd <= 0:
            return 0.0, 0.0
        # SIM_WIND_DIR is where the wind comes from; air moves the opposite way
        d = math.radians(self.params["SIM_WIND_DIR"] + 180.0)
        return spd * math.cos(d), spd * math.sin(d)

    def ground_h(self, n: float, e: float) -> float:
        # flat at home, but for terrain patches (the last one that covers the point), then obstacles on top
        g = 0.0
        for (tn, te, r, th) in self.terrain:
            if (n - tn) ** 2 + (e - te) ** 2 <= r * r:
                g = th
        for (on, oe, r, oh) in self.obstacles:
            if (n - on) ** 2 + (e - oe) ** 2 <= r * r:
                g = max(g, oh)
        return g

    def latlon(self) -> tuple[int, int]:
        return geo.offset_latlon(self.home_lat, self.home_lon, self.n, self.e)

    def set_home(self, lat: int, lon: int, alt_amsl: float) -> None:
        # keep the local frame anchored on the original home so the vehicle does not jump
        dn, de = geo.ne_offset(self.home_lat, self.home_lon, lat, lon)
        self.n -= dn
        self.e -= de
        self.h += self.home_alt - alt_amsl
        self.obstacles = [(on - dn, oe - de, r, oh + self.home_alt - alt_amsl)
                          for (on, oe, r, oh) in self.obstacles]
        self.terrain = [(tn - dn, te - de, r, th + self.home_alt - alt_amsl) for (tn, te, r, th) in self.terrain]
        self.home_lat, self.home_lon, self.home_alt = lat, lon, alt_amsl
        self.home_set = True
        self.broadcast(self.make_msg("HOME_POSITION"))

    def reached(self) -> bool:
        if self.tgt is None or self.tgt[2] is None:
            return False
        r = max(self.params["WPNAV_RADIUS"] / 100.0, 0.05)
        return (geo.dist(self.n, self.e, self.tgt[0], self.tgt[1]) <= r
                and abs(self.h - self.tgt[2]) <= max(r, 0.3) and math.hypot(self.vn, self.ve) < 3.0)
