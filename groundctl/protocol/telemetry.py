"""Telemetry -> VehicleState: one cheap update per message, no allocation on the hot path.

Checked against ArduPilot: GLOBAL_POSITION_INT reads 0,0 until the EKF has an origin; the EKF is
ready to navigate when EKF_STATUS_REPORT has EKF_POS_HORIZ_ABS; STATUSTEXT longer than 50 chars is
sent in 50-char chunks sharing a non-zero id with chunk_seq 0, 1, ..., the last one shorter than 50
(possibly empty); texts of 50 chars or less go out once with id 0 (GCS_Common.cpp, send_textv).

Vehicle time: GLOBAL_POSITION_INT, ATTITUDE and SYSTEM_TIME carry time_boot_ms, the autopilot's own
clock (AP_HAL::millis), so what happened on the vehicle can be dated however late it reaches us.
SYSTEM_TIME pairs it with time_unix_usec, which is 0 until AP_RTC has a time source (GPS, or the GCS
with RTC_TYPES); the clock keeps running when the GPS is lost. A reboot starts time_boot_ms again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.protocol.command import COPTER_MODE_NAMES

_ARMED = mavlink.MAV_MODE_FLAG_SAFETY_ARMED
_PREARM = mavlink.MAV_SYS_STATUS_PREARM_CHECK
_POS_ABS = mavlink.EKF_POS_HORIZ_ABS
_CHUNK = 50  # MAVLINK_MSG_STATUSTEXT_FIELD_TEXT_LEN
_MAX_PARTIAL = 8  # chunked texts under assembly; older ones are dropped (their tail was lost)


@dataclass(frozen=True)
class StatusText:
    time: float
    severity: int
    text: str


class VehicleState:
    """What the vehicle last said about itself. Fields are None until the message that sets them arrives.

    `update(msg, now)` returns a StatusText when a STATUSTEXT completes a text, else None; complete
    texts are also kept in `texts` (the last 50).
    """

    __slots__ = (
        "sysid", "compid", "last_heartbeat", "last_message", "armed", "custom_mode", "mode", "base_mode",
        "system_status", "vehicle_type", "autopilot",
        "lat", "lon", "alt_amsl_m", "alt_rel_m", "vx_mps", "vy_mps", "vz_mps", "heading_deg",
        "roll_rad", "pitch_rad", "yaw_rad",
        "voltage_v", "current_a", "battery_pct", "sensors_present", "sensors_enabled", "sensors_health",
        "energy_consumed_wh", "current_consumed_mah", "battery_time_remaining_s",
        "gps_fix_type", "satellites", "gps_eph", "ekf_flags",
        "groundspeed_mps", "airspeed_mps", "throttle_pct", "climb_mps",
        "mission_seq", "mission_total", "mission_state", "last_reached_seq",
        "home_lat", "home_lon", "home_alt_amsl_m",
        "wind_dir_deg", "wind_speed_mps", "wind_speed_z_mps",
        "fence_breach_status", "fence_breach_count", "fence_breach_type", "fence_breach_time",
        "winch_line_m", "winch_speed_mps", "winch_status",
        "time_boot_ms", "time_boot_rx", "unix_usec", "unix_boot_ms", "boots",
        "texts", "_partial", "messages",
    )

    def __init__(self, sysid: int | None = None, compid: int | None = None) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, None)
        self.sysid, self.compid = sysid, compid
        self.armed = False
        self.messages = 0
        self.boots = 0
        self.texts: deque[StatusText] = deque(maxlen=50)
        self._partial: dict[int, tuple[int, list[str]]] = {}

    # -- derived ---------------------------------------------------------------------------------
    def link_ok(self, now: float, timeout_s: float = 3.0) -> bool:
        return self.last_heartbeat is not None and now - self.last_heartbeat <= timeout_s

    @property
    def has_position(self) -> bool:
        return self.lat is not None

    @property
    def position_ready(self) -> bool:
        """EKF has an absolute horizontal position: GUIDED/AUTO arming can work."""
        return self.ekf_flags is not None and bool(self.ekf_flags & _POS_ABS)

    @property
    def prearm_ok(self) -> bool | None:
        """SYS_STATUS pre-arm bit; None until SYS_STATUS reports it."""
        if self.sensors_present is None or not self.sensors_present & _PREARM:
            return None
        return bool(self.sensors_health & _PREARM)

    def _boot_ms(self, ms: int, now: float) -> None:
        """Advance the vehicle clock; a clock that runs back more than a minute is a reboot."""
        if not ms:
            return  # not set by this sender
        last = self.time_boot_ms
        if last is None or ms >= last:
            self.time_boot_ms, self.time_boot_rx = ms, now
        elif last - ms > 60_000:
            self.boots += 1
            self.time_boot_ms, self.time_boot_rx = ms, now
            self.unix_usec = self.unix_boot_ms = None
        # a little older: a late or reordered message; the clock does not run back

    # -- update ----------------------------------------------------------------------------------
    def update(self, msg: Any, now: float) -> StatusText | None:
        handler = _HANDLERS.get(msg.get_type())
        if handler is None:
            return None
        if self.sysid is not None and msg.get_srcSystem() != self.sysid:
            return None
        self.messages += 1
        self.last_message = now
        return handler(self, msg, now)

    def _heartbeat(self, m: Any, now: float) -> None:
        if self.compid is not None and m.get_srcComponent() != self.compid:
            return None  # a camera or gimbal heartbeat says nothing about the flight controller
        if m.type == mavlink.MAV_TYPE_GCS or m.autopilot == mavlink.MAV_AUTOPILOT_INVALID:
            return None  # another GCS, or a companion/camera/gimbal sharing the system id
        self.last_heartbeat = now
        self.base_mode = m.base_mode
        self.armed = bool(m.base_mode & _ARMED)
        if self.custom_mode != m.custom_mode:
            self.custom_mode = m.custom_mode
            self.mode = COPTER_MODE_NAMES.get(m.custom_mode, f"MODE_{m.custom_mode}")
        self.system_status = m.system_status
        self.vehicle_type = m.type
        self.autopilot = m.autopilot
        return None

    def _global_position_int(self, m: Any, now: float) -> None:
        self._boot_ms(m.time_boot_ms, now)
        if m.lat == 0 and m.lon == 0:
            return None  # no EKF origin yet
        self.lat = m.lat * 1e-7
        self.lon = m.lon * 1e-7
        self.alt_amsl_m = m.alt * 1e-3
        self.alt_rel_m = m.relative_alt * 1e-3
        self.vx_mps, self.vy_mps, self.vz_mps = m.vx * 0.01, m.vy * 0.01, m.vz * 0.01
        self.heading_deg = None if m.hdg == 65535 else m.hdg * 0.01
        return None

    def _attitude(self, m: Any, now: float) -> None:
        self._boot_ms(m.time_boot_ms, now)
        self.roll_rad, self.pitch_rad, self.yaw_rad = m.roll, m.pitch, m.yaw
        return None

    def _sys_status(self, m: Any, now: float) -> None:
        self.voltage_v = None if m.voltage_battery == 65535 else m.voltage_battery * 1e-3
        self.current_a = None if m.current_battery == -1 else m.current_battery * 0.01
        self.battery_pct = None if m.battery_remaining == -1 else float(m.battery_remaining)
        self.sensors_present = m.onboard_control_sensors_present
        self.sensors_enabled = m.onboard_control_sensors_enabled
        self.sensors_health = m.onboard_control_sensors_health
        return None

    def _battery_status(self, m: Any, now: float) -> None:
        if m.id != 0:
            return None  # the first battery is the flight battery
        if m.battery_remaining != -1:
            self.battery_pct = float(m.battery_remaining)
        if m.current_battery != -1:
            self.current_a = m.current_battery * 0.01
        if m.energy_consumed != -1:
            self.energy_consumed_wh = m.energy_consumed / 36.0  # hJ -> Wh
        if m.current_consumed != -1:
            self.current_consumed_mah = float(m.current_consumed)
        if m.time_remaining:
            self.battery_time_remaining_s = float(m.time_remaining)
        return None

    def _gps_raw_int(self, m: Any, now: float) -> None:
        self.gps_fix_type = m.fix_type
        self.satellites = None if m.satellites_visible == 255 else m.satellites_visible
        self.gps_eph = None if m.eph == 65535 else m.eph * 0.01
        return None

    def _ekf_status_report(self, m: Any, now: float) -> None:
        self.ekf_flags = m.flags
        return None

    def _vfr_hud(self, m: Any, now: float) -> None:
        self.groundspeed_mps = m.groundspeed
        self.airspeed_mps = m.airspeed
        self.throttle_pct = m.throttle
        self.climb_mps = m.climb
        return None

    def _mission_current(self, m: Any, now: float) -> None:
        self.mission_seq = m.seq
        self.mission_total = m.total
        self.mission_state = m.mission_state
        return None

    def _mission_item_reached(self, m: Any, now: float) -> None:
        self.last_reached_seq = m.seq
        return None

    def _home_position(self, m: Any, now: float) -> None:
        self.home_lat, self.home_lon, self.home_alt_amsl_m = m.latitude * 1e-7, m.longitude * 1e-7, m.altitude * 1e-3
        return None

    def _wind(self, m: Any, now: float) -> None:
        self.wind_dir_deg, self.wind_speed_mps, self.wind_speed_z_mps = m.direction, m.speed, m.speed_z
        return None

    def _fence_status(self, m: Any, now: float) -> None:
        self.fence_breach_status = m.breach_status
        self.fence_breach_count = m.breach_count
        self.fence_breach_type = m.breach_type
        self.fence_breach_time = m.breach_time
        return None

    def _winch_status(self, m: Any, now: float) -> None:
        self.winch_line_m, self.winch_speed_mps, self.winch_status = m.line_length, m.speed, m.status
        return None

    def _system_time(self, m: Any, now: float) -> None:
        self._boot_ms(m.time_boot_ms, now)
        if m.time_unix_usec:
            self.unix_usec, self.unix_boot_ms = m.time_unix_usec, m.time_boot_ms
        return None

    def _statustext(self, m: Any, now: float) -> StatusText | None:
        piece = m.text
        if isinstance(piece, (bytes, bytearray)):
            piece = bytes(piece).decode("ascii", "replace")
        nul = piece.find("\x00")
        last = nul >= 0 or len(piece) < _CHUNK
        if nul >= 0:
            piece = piece[:nul]
        tid = getattr(m, "id", 0)
        if tid == 0:
            return self._text(now, m.severity, piece)
        seq = getattr(m, "chunk_seq", 0)
        expect, parts = self._partial.get(tid, (0, []))
        if seq != expect:
            if seq != 0:
                return None  # a piece went missing: the text cannot be joined
            parts = []  # the id wrapped round or the text was sent again
        parts.append(piece)
        if last:
            self._partial.pop(tid, None)
            return self._text(now, m.severity, "".join(parts))
        self._partial[tid] = (seq + 1, parts)
        if len(self._partial) > _MAX_PARTIAL:
            self._partial.pop(next(iter(self._partial)))
        return None

    def _text(self, now: float, severity: int, text: str) -> StatusText:
        st = StatusText(now, severity, text)
        self.texts.append(st)
        return st

    def snapshot(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if not k.startswith("_") and k != "texts"}


_HANDLERS: dict[str, Callable[[VehicleState, Any, float], StatusText | None]] = {
    "HEARTBEAT": VehicleState._heartbeat,
    "GLOBAL_POSITION_INT": VehicleState._global_position_int,
    "ATTITUDE": VehicleState._attitude,
    "SYS_STATUS": VehicleState._sys_status,
    "BATTERY_STATUS": VehicleState._battery_status,
    "GPS_RAW_INT": VehicleState._gps_raw_int,
    "EKF_STATUS_REPORT": VehicleState._ekf_status_report,
    "VFR_HUD": VehicleState._vfr_hud,
    "MISSION_CURRENT": VehicleState._mission_current,
    "MISSION_ITEM_REACHED": VehicleState._mission_item_reached,
    "HOME_POSITION": VehicleState._home_position,
    "WIND": VehicleState._wind,
    "FENCE_STATUS": VehicleState._fence_status,
    "WINCH_STATUS": VehicleState._winch_status,
    "STATUSTEXT": VehicleState._statustext,
    "SYSTEM_TIME": VehicleState._system_time,
}

__all__ = ["VehicleState", "StatusText"]
