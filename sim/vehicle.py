"""One simulated ArduCopter, assembled from its parts the way ArduPilot's Copter
class is spread over one file per concern:

| part | module | ArduPilot counterpart |
| --- | --- | --- |
| MAVLink I/O, handlers, commands | `mavlink_io.py` | GCS_Common.cpp, GCS_MAVLink_Copter.cpp |
| telemetry streams | `telemetry.py` | GCS_MAVLINK::try_send_message |
| modes, arming, RTL, LAND | `modes.py` | mode*.cpp, AP_Arming_Copter.cpp |
| mission storage and AUTO | `auto.py` | AP_Mission.cpp, mode_auto.cpp |
| failsafes and fence | `failsafes.py` | AP_BattMonitor, AC_Fence, events.cpp |
| gripper / winch | `gripper.py`, `winch.py` | AP_Gripper, AP_Winch |
| multicopter physics | `physics.py` | SITL/SIM_Multicopter.cpp |
| battery | `battery.py` | SITL/SIM_Battery.cpp |

Each part is a mixin whose methods work on the one vehicle state set up here, so
a part never imports another (shared numbers live in `defs.py`). All timers run
on the runner's simulated clock, so the vehicle behaves the same at any --speedup.
"""

from __future__ import annotations

import random

from . import geo
from .auto import AutoMission
from .battery import CELLS, Battery, cold_capacity_factor
from .defs import AUTO, MISSION_STOPPED, STABILIZE
from .failsafes import Failsafes
from .gripper import Gripper
from .mavlink_io import MavlinkIO
from .mission import FENCE, MISSION, RALLY, Protocol
from .modes import Modes
from .params import Params, default_table
from .physics import Physics
from .power import Airframe, air_density, isa_temperature_c
from .telemetry import Telemetry
from .winch import Winch

REBOOT_S = 2.5


class Options:
    """Per-vehicle settings from the command line."""

    def __init__(self, **kw):
        self.home = (-35.363261, 149.165230, 584.0, 353.0)
        self.speedup = 1.0
        self.wind_mps = 0.0
        self.wind_dir_deg = 0.0
        self.payload_kg = 0.0
        self.battery_wh = 100.0
        self.battery_pct = 100.0
        self.mass_kg = 3.0              # empty, battery included
        self.rotors = 4
        self.rotor_diameter_m = 0.46
        self.drag_area_m2 = 0.07
        self.temp_c = None              # ambient at home; None = ISA for the home altitude
        self.efficiency = 1.0           # multiplier on the whole power chain's efficiency
        self.seed = 0
        self.loss = 0.0
        self.cut_after_takeoff = None
        self.cut_for = 0.0
        self.gripper_jam = False
        self.lose_command: dict[int, int] = {}  # MAV_CMD id -> how many more to drop on receipt
        self.obstacles: list[tuple[float, float, float, float]] = []
        self.terrain: list[tuple[float, float, float, float]] = []  # (lat, lon, radius m, ground m above home)
        self.no_ekf_s = 5.0
        self.__dict__.update(kw)


class Vehicle(MavlinkIO, Telemetry, Modes, AutoMission, Failsafes, Gripper, Winch, Physics, Battery):
    """One copter: its state, boot, reboot and the per-step schedule of its parts."""

    def __init__(self, runner, sysid: int, opts: Options):
        self.runner = runner
        self.sysid = sysid
        self.opts = opts
        self.rng = random.Random(opts.seed * 1000 + sysid)
        lat, lon, alt, hdg = opts.home
        self.home_lat = int(round(lat * 1e7))
        self.home_lon = int(round(lon * 1e7))
        self.home_alt = float(alt)  # AMSL of the ground at home
        self.home_hdg = float(hdg)
        cap_mah = int(opts.battery_wh / (CELLS * 3.7) * 1000)
        self.airframe = Airframe(mass_kg=opts.mass_kg, rotors=opts.rotors,
                                 rotor_diameter_m=opts.rotor_diameter_m,
                                 drag_area_m2=opts.drag_area_m2, efficiency=opts.efficiency)
        # ambient air at home, for the whole flight: a delivery stays within ~100 m of it
        self.temp_c = isa_temperature_c(self.home_alt) if opts.temp_c is None else opts.temp_c
        self.rho = air_density(self.home_alt, self.temp_c)
        self.capacity_factor = cold_capacity_factor(self.temp_c)
        self.params = Params(default_table(sysid, cap_mah, opts.speedup, opts.wind_mps,
                                           opts.wind_dir_deg))
        self.links: list = []
        self.servers: list = []          # transports that can be closed/reopened on reboot
        self.store = {MISSION: [], FENCE: [], RALLY: []}
        self.mission_total = 0
        self.protocols = {t: Protocol(self, t) for t in (MISSION, FENCE, RALLY)}
        self.obstacles = []
        for (olat, olon, orad, oh) in opts.obstacles:
            n, e = geo.ne_offset(self.home_lat, self.home_lon, int(olat * 1e7), int(olon * 1e7))
            self.obstacles.append((n, e, orad, oh))
        self.terrain = []
        for (tlat, tlon, trad, th) in opts.terrain:
            n, e = geo.ne_offset(self.home_lat, self.home_lon, int(tlat * 1e7), int(tlon * 1e7))
            self.terrain.append((n, e, trad, th))
        self.consumed_mah = cap_mah * (1.0 - opts.battery_pct / 100.0)
        self.consumed_wh = opts.battery_wh * (1.0 - opts.battery_pct / 100.0)
        self.parcel_attached = False
        self.parcel_pos = None  # where a released parcel ended up: (n, e, h)
        self.takeoff_time = None
        self.statustext_id = 0
        self.now = runner.now
        self.boot(self.now)

    def boot(self, now: float) -> None:
        self.boot_time = now
        self.rebooting_until = None
        # AP_Vehicle::setup -> AP_Stats::init: bootcount.set_and_save(bootcount + 1)
        self.params.values["STAT_BOOTCNT"] = min(self.params.values["STAT_BOOTCNT"] + 1, 32767)
        self.params.snapshot_boot()
        self.mode = STABILIZE
        self.armed = False
        self.auto_armed = False
        self.land_complete = True
        self.land_maybe_t = 0.0
        self.ekf_ready = False
        self.home_set = False
        self.n = self.e = 0.0
        self.h = 0.0
        self.vn = self.ve = self.vu = 0.0
        self.yaw = self.home_hdg
        self.roll = self.pitch = 0.0
        self.thrust = 0.0
        self.power_w = self.idle_power_w()
        self.current_a = 0.0
        self.voltage = 0.0
        self.update_battery(0.0)
        self.batt_low_since = None
        self.batt_crit_since = None
        self.batt_failsafe = 0
        self.tgt = None  # (n, e, h) position target
        self.speed_xy = self.params["WPNAV_SPEED"] / 100.0
        self.speed_up = self.params["WPNAV_SPEED_UP"] / 100.0
        self.speed_dn = self.params["WPNAV_SPEED_DN"] / 100.0
        self.vu_cmd = None  # explicit climb rate command (landing), m/s
        self.sub = None  # AUTO / RTL / LAND sub state
        self.sub_t = 0.0
        self.rtl = None
        self.pp = None  # payload place state
        self.loiter_until = None
        self.mstate = MISSION_STOPPED
        self.nav_idx = None
        self.do_idx = None
        self.nav_loaded = False
        self.do_loaded = False
        self.do_all_done = False
        self.jump_counts: dict[int, int] = {}
        self.waiting_to_start = False
        self.cond_delay_until = None
        self.disarm_timer = now
        self.breaches = 0
        self.breach_count = 0
        self.breach_time = 0
        self.fence_enabled = bool(self.params["FENCE_ENABLE"])
        self.alt_max_backup = None
        self.circle_backup = None
        self.gcs_last_hb = None
        self.gcs_failsafe = False
        self.last_prearm_report = now
        # gripper: only exists if enabled with a type at boot (AP_Gripper::init)
        self.grip_backend = (self.params.at_boot("GRIP_ENABLE") != 0
                             and self.params.at_boot("GRIP_TYPE") in (1, 2))
        self.grip_state = "neutral"
        # AP_Gripper_Servo::init_gripper drives the output to GRIP_NEUTRAL at boot
        self.grip_pwm = int(self.params["GRIP_NEUTRAL"]) if self.grip_backend else 0
        self.grip_t = now
        self.winch_enabled = self.params.at_boot("WINCH_TYPE") != 0
        self.winch_len = 0.0
        self.winch_rate = 0.0
        self.winch_len_target = None
        self.winch_mode = "relaxed"
        self.parcel_on_ground = False
        # stream rates are per link (per channel in ArduPilot) and back to defaults at boot
        for link in self.links:
            self._init_link_sched(link)
        self.next_due = now
        self.vu_des = 0.0
        self._blocked_since = None
        self.idle_dt = 0.0
        self.paused_at = None  # DO_PAUSE_CONTINUE hold point

    def reboot(self) -> None:
        """Links drop and come back after REBOOT_S; params, mission, fence, rally survive."""
        # stop listening before dropping clients, so a client that reconnects on
        # seeing the close is refused rather than accepted into a dying socket
        for srv in self.servers:
            srv.pause()
        for link in list(self.links):
            if getattr(link, "closable", False):
                link.close()
        self.rebooting_until = self.now + REBOOT_S

    def _finish_reboot(self) -> None:
        # AP_Gripper_Servo::init_gripper moves to neutral; a parcel already held stays
        # physically attached (parcel_attached is not reset by boot)
        self.boot(self.now)
        for srv in self.servers:
            srv.resume()

    def step(self, now: float, dt: float) -> None:
        self.now = now
        if self.rebooting_until is not None:
            if now >= self.rebooting_until:
                self._finish_reboot()
            return
        if not self.ekf_ready and now - self.boot_time >= self.opts.no_ekf_s:
            self.ekf_ready = True
            if not self.home_set:
                self.set_home(self.home_lat, self.home_lon, self.home_alt)
            self.origin = (self.home_lat, self.home_lon, self.home_alt)
            self.broadcast(self.make_msg("GPS_GLOBAL_ORIGIN"))
        for p in self.protocols.values():
            if p.receiving:
                p.update(now)
        if self.grip_state in ("grabbing", "releasing"):
            self.update_gripper()
        if self.armed or not self.land_complete:
            self.idle_dt = 0.0
            self.fly(dt)
        else:
            # a vehicle sitting disarmed changes slowly: do its bookkeeping at 5 Hz so
            # hundreds of idle vehicles stay cheap
            self.idle_dt += dt
            if self.winch_enabled:
                self.update_winch(dt)
            if self.idle_dt >= 0.2 or self.mode == AUTO:
                self.update_battery(self.idle_dt)
                if self.mode == AUTO:
                    self.auto_logic()
                if self.fence_enabled:
                    self.fence_check()
                self.failsafes()
                self.idle_dt = 0.0
            if now >= self.next_due:
                self.telemetry()
            return
        if self.winch_enabled:
            self.update_winch(dt)
        if self.fence_enabled:
            self.fence_check()
        self.failsafes()
        if now >= self.next_due:
            self.telemetry()
