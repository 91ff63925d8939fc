"""The parameter table: names, defaults and MAVLink types as ArduCopter 4.x has them.

Units follow ArduCopter (WPNAV_* in cm and cm/s, RTL_ALT in cm, LAND_SPEED in
cm/s) because a ground station that writes these must use the autopilot's units.
"""

from __future__ import annotations

import math
import struct

from pymavlink.dialects.v20 import ardupilotmega as mavlink

INT8 = mavlink.MAV_PARAM_TYPE_INT8
INT16 = mavlink.MAV_PARAM_TYPE_INT16
INT32 = mavlink.MAV_PARAM_TYPE_INT32
REAL32 = mavlink.MAV_PARAM_TYPE_REAL32

_LIMITS = {INT8: (-128, 127), INT16: (-32768, 32767), INT32: (-2**31, 2**31 - 1)}

# Parameters that ArduPilot only reads at boot: a new value is stored at once
# but the running vehicle keeps the boot-time value until a reboot.
REBOOT_REQUIRED = frozenset({"GRIP_ENABLE", "GRIP_TYPE", "WINCH_TYPE"})

# Groups hidden from PARAM_REQUEST_LIST while their enable parameter is 0
# (AP_PARAM_FLAG_ENABLE in AP_Gripper.cpp / AP_Winch.cpp).
ENABLE_GROUPS = {"GRIP_": "GRIP_ENABLE", "WINCH_": "WINCH_TYPE"}


def default_table(sysid: int, battery_mah: int, speedup: float, wind_spd: float,
                  wind_dir: float) -> list[tuple[str, float, int]]:
    t: list[tuple[str, float, int]] = [
        # ArduPilot 4.7 names (SYSID_THISMAV / SYSID_MYGCS before 4.7)
        ("MAV_SYSID", sysid, INT16),
        ("MAV_GCS_SYSID", 255, INT16),
        ("FRAME_CLASS", 1, INT8),
        ("FRAME_TYPE", 1, INT8),
        ("ARMING_CHECK", 1, INT32),
        ("DISARM_DELAY", 10, INT8),
        ("STAT_BOOTCNT", 0, INT16),  # AP_Stats::init adds one at every boot
        ("MOT_THST_HOVER", 0.35, REAL32),
        ("FS_GCS_ENABLE", 0, INT8),
        ("FS_GCS_TIMEOUT", 5, REAL32),
        ("FS_EKF_THRESH", 0.8, REAL32),
        ("AUTO_OPTIONS", 0, INT32),
        ("GUID_OPTIONS", 0, INT32),
        ("MIS_TOTAL", 0, INT16),
        ("MIS_RESTART", 0, INT8),
        ("MIS_OPTIONS", 0, INT16),
        ("WPNAV_SPEED", 1000, REAL32),
        ("WPNAV_RADIUS", 200, REAL32),
        ("WPNAV_SPEED_UP", 250, REAL32),
        ("WPNAV_SPEED_DN", 150, REAL32),
        ("WPNAV_ACCEL", 250, REAL32),
        ("WPNAV_ACCEL_Z", 100, REAL32),
        ("LAND_SPEED", 50, INT16),
        ("LAND_SPEED_HIGH", 0, INT16),
        ("LAND_ALT_LOW", 1000, INT16),
        ("RTL_ALT", 1500, INT32),
        ("RTL_ALT_FINAL", 0, INT16),
        ("RTL_CONE_SLOPE", 3.0, REAL32),
        ("RTL_CLIMB_MIN", 0, INT16),
        ("RTL_SPEED", 0, INT16),
        ("RTL_LOIT_TIME", 5000, INT32),
        ("RALLY_TOTAL", 0, INT8),
        ("RALLY_LIMIT_KM", 0.3, REAL32),
        ("RALLY_INCL_HOME", 1, INT8),
        ("FENCE_ENABLE", 0, INT8),
        ("FENCE_TYPE", 7, INT8),
        ("FENCE_ACTION", 1, INT8),
        ("FENCE_ALT_MAX", 100, REAL32),
        ("FENCE_ALT_MIN", -10, REAL32),
        ("FENCE_RADIUS", 300, REAL32),
        ("FENCE_MARGIN", 2, REAL32),
        ("FENCE_TOTAL", 0, INT8),
        ("FENCE_OPTIONS", 0, INT16),
        ("FENCE_AUTOENABLE", 0, INT8),
        ("BATT_MONITOR", 4, INT8),
        ("BATT_CAPACITY", battery_mah, INT32),
        ("BATT_LOW_VOLT", 14.0, REAL32),
        ("BATT_LOW_MAH", 0, REAL32),
        ("BATT_CRT_VOLT", 0, REAL32),
        ("BATT_CRT_MAH", 0, REAL32),
        ("BATT_LOW_TIMER", 10, INT8),
        # ArduCopter's default is 0 (report only); a delivery vehicle is set up
        # to come home, and the sim should show that behaviour out of the box.
        ("BATT_FS_LOW_ACT", 2, INT8),
        ("BATT_FS_CRT_ACT", 0, INT8),
        ("GRIP_ENABLE", 0, INT8),
        ("GRIP_TYPE", 0, INT8),
        ("GRIP_GRAB", 1900, INT16),
        ("GRIP_RELEASE", 1100, INT16),
        ("GRIP_NEUTRAL", 1500, INT16),
        ("GRIP_REGRAB", 0, INT8),
        ("GRIP_AUTOCLOSE", 0, REAL32),
        ("WINCH_TYPE", 0, INT8),
        ("WINCH_RATE_MAX", 1.0, REAL32),
        ("WINCH_POS_P", 1.0, REAL32),
        ("WINCH_OPTIONS", 7, INT8),
        ("PLDP_THRESH", 0.9, REAL32),
        ("PLDP_RNG_MAX", 0, REAL32),
        ("PLDP_DELAY", 0, REAL32),
        ("PLDP_SPEED_DN", 0, REAL32),
        ("SIM_SPEEDUP", speedup, REAL32),
        ("SIM_WIND_SPD", wind_spd, REAL32),
        ("SIM_WIND_DIR", wind_dir, REAL32),
        ("SIM_WIND_TURB", 0, REAL32),
        ("SIM_GRPS_ENABLE", 0, INT8),
        ("SIM_GRPS_PIN", -1, INT8),
        ("SIM_GRPS_GRAB", 2000, INT16),
        ("SIM_GRPS_RELEASE", 1000, INT16),
        ("SIM_GRPS_REVERSE", 0, INT8),
    ]
    for ch in range(1, 17):
        # SITL's quad X: motors on outputs 1-4 (functions 33-36)
        t.append((f"SERVO{ch}_FUNCTION", 32 + ch if ch <= 4 else 0, INT16))
    return t


def coerce(value: float, ptype: int) -> float:
    """What AP_Param::set_float stores: float32 for REAL32; for integers add 0.01 away from
    zero, clamp to the type, then truncate."""
    if ptype == REAL32:
        return struct.unpack("<f", struct.pack("<f", float(value)))[0]
    lo, hi = _LIMITS[ptype]
    v = value + (0.01 if value >= 0 else -0.01)
    return float(int(max(lo, min(hi, v))))


class Params:
    """Live values plus the boot-time snapshot for REBOOT_REQUIRED names."""

    def __init__(self, table: list[tuple[str, float, int]]):
        self.names: list[str] = [n for n, _, _ in table]
        self.types: dict[str, int] = {n: t for n, _, t in table}
        self.values: dict[str, float] = {n: coerce(v, t) for n, v, t in table}
        self.boot: dict[str, float] = {}
        self.snapshot_boot()

    def snapshot_boot(self) -> None:
        self.boot = {n: self.values[n] for n in REBOOT_REQUIRED}

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def get(self, name: str, default: float = 0.0) -> float:
        return self.values.get(name, default)

    def at_boot(self, name: str) -> float:
        return self.boot.get(name, self.values[name])

    def set(self, name: str, value: float) -> bool:
        if name not in self.types:
            return False
        if math.isnan(value) or math.isinf(value):
            return True  # known name, value ignored (AP_Param::set_float)
        self.values[name] = coerce(value, self.types[name])
        return True

    def visible(self) -> list[str]:
        out = []
        for n in self.names:
            hidden = False
            for prefix, enable in ENABLE_GROUPS.items():
                if n.startswith(prefix) and n != enable and self.values[enable] == 0:
                    hidden = True
            if not hidden:
                out.append(n)
        return out
