"""Mission, fence and rally storage and the MAVLink mission item protocol.

Mirrors ArduPilot's libraries/GCS_MAVLink/MissionItemProtocol*.cpp and
libraries/AP_Mission/AP_Mission.cpp (mavlink_int_to_mission_cmd /
mission_cmd_to_mavlink_int): an item is converted to what the autopilot stores
when it arrives, and what is stored is what a read-back returns. That is where
the read-back quirks (frame without _INT, NAV_LAND param4 reduced to its sign,
rally altitudes in whole metres, fence items as frame 0 altitude 0) come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Protocol as TypingProtocol

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from .geo import check_lat, check_lng, f32

M = mavlink
MISSION, FENCE, RALLY = (M.MAV_MISSION_TYPE_MISSION, M.MAV_MISSION_TYPE_FENCE,
                         M.MAV_MISSION_TYPE_RALLY)

# AP_Mission::stored_in_location
LOCATION_CMDS = frozenset({
    M.MAV_CMD_NAV_WAYPOINT, M.MAV_CMD_NAV_LOITER_UNLIM, M.MAV_CMD_NAV_LOITER_TURNS,
    M.MAV_CMD_NAV_LOITER_TIME, M.MAV_CMD_NAV_LAND, M.MAV_CMD_NAV_TAKEOFF,
    M.MAV_CMD_NAV_CONTINUE_AND_CHANGE_ALT, M.MAV_CMD_NAV_LOITER_TO_ALT,
    M.MAV_CMD_NAV_SPLINE_WAYPOINT, M.MAV_CMD_NAV_GUIDED_ENABLE, M.MAV_CMD_DO_SET_HOME,
    M.MAV_CMD_DO_RETURN_PATH_START, M.MAV_CMD_DO_LAND_START, M.MAV_CMD_DO_GO_AROUND,
    M.MAV_CMD_DO_SET_ROI_LOCATION, M.MAV_CMD_DO_SET_ROI, M.MAV_CMD_NAV_VTOL_TAKEOFF,
    M.MAV_CMD_NAV_VTOL_LAND, M.MAV_CMD_NAV_PAYLOAD_PLACE,
})

# AP_Mission::cmd_has_location: x/y are lat/lon (scaled 1e7 in MISSION_ITEM_INT)
HAS_LOCATION = LOCATION_CMDS | frozenset({
    M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION, M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION,
    M.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION, M.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION,
    M.MAV_CMD_NAV_FENCE_RETURN_POINT, M.MAV_CMD_NAV_RALLY_POINT,
})

NAV_LAST = 95  # MAV_CMD_NAV_LAST


def is_nav(cmd: int) -> bool:
    return cmd <= NAV_LAST or cmd in (M.MAV_CMD_NAV_SET_YAW_SPEED, 42702, 42703)


# Mission_Command::type() names used in "Mission: N <type>" texts
CMD_NAMES = {
    16: "WP", 82: "SplineWP", 20: "RTL", 17: "LoitUnlim", 19: "LoitTime", 92: "GuidedEnable",
    18: "LoitTurns", 31: "LoitAltitude", 112: "CondDelay", 114: "CondDist", 115: "CondYaw",
    178: "ChangeSpeed", 179: "SetHome", 183: "SetServo", 181: "SetRelay", 184: "RepeatServo",
    182: "RepeatRelay", 195: "SetROILocation", 197: "SetROINone", 201: "SetROI", 22: "Takeoff",
    21: "Land", 30: "ContinueAndChangeAlt", 207: "FenceEnable", 189: "LandStart",
    188: "ReturnPathStart", 93: "Delay", 211: "Gripper", 94: "PayloadPlace", 208: "Parachute",
    42600: "Winch", 177: "Jump", 222: "GuidedLimits", 84: "VTOLTakeoff", 85: "VTOLLand",
}

ABS, REL, TERRAIN = 0, 1, 2


@dataclass
class Item:
    """One stored item, kept in the form a read-back returns (MISSION_ITEM_INT)."""
    command: int
    frame: int = 0
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    x: int = 0
    y: int = 0
    z: float = 0.0
    alt_frame: int = ABS  # for execution: how z is referenced
    extra: dict = field(default_factory=dict)


def _u8(v: float) -> int:
    return int(v) & 0xFF if not math.isnan(v) else 0


def _u16(v: float) -> int:
    return int(v) & 0xFFFF if not math.isnan(v) else 0


def _i8(v: float) -> int:
    i = int(v) & 0xFF if not math.isnan(v) else 0
    return i - 0x100 if i >= 0x80 else i


def _i16(v: float) -> int:
    i = int(v) & 0xFFFF if not math.isnan(v) else 0
    return i - 0x10000 if i >= 0x8000 else i


def item_int_from_mission_item(pkt) -> tuple[int, dict]:
    """convert_MISSION_ITEM_to_MISSION_ITEM_INT: float degrees -> 1e7 ints for location commands."""
    d = {k: getattr(pkt, k) for k in ("param1", "param2", "param3", "param4", "z", "seq",
                                       "command", "frame", "current", "autocontinue",
                                       "mission_type")}
    if pkt.command in HAS_LOCATION:
        if not (-90 <= pkt.x <= 90):
            return M.MAV_MISSION_INVALID_PARAM5_X, d
        if not (-180 <= pkt.y <= 180):
            return M.MAV_MISSION_INVALID_PARAM6_Y, d
        d["x"] = int(f32(f32(pkt.x) * f32(1.0e7)))
        d["y"] = int(f32(f32(pkt.y) * f32(1.0e7)))
    else:
        d["x"] = int(pkt.x)
        d["y"] = int(pkt.y)
    return M.MAV_MISSION_ACCEPTED, d


def _sanity(d: dict) -> int:
    cmd = d["command"]
    nan4_ok = cmd in (16, 17, 21, 22, 84, 85)
    nan3_ok = cmd == 85
    for i, res in ((1, M.MAV_MISSION_INVALID_PARAM1), (2, M.MAV_MISSION_INVALID_PARAM2),
                   (3, M.MAV_MISSION_INVALID_PARAM3), (4, M.MAV_MISSION_INVALID_PARAM4)):
        v = d[f"param{i}"]
        if math.isinf(v):
            return res
        if math.isnan(v) and not ((i == 4 and nan4_ok) or (i == 3 and nan3_ok)):
            return res
    return M.MAV_MISSION_ACCEPTED


def convert_mission_item(d: dict) -> tuple[int, Optional[Item]]:
    """AP_Mission::mavlink_int_to_mission_cmd followed by mission_cmd_to_mavlink_int."""
    res = _sanity(d)
    if res != M.MAV_MISSION_ACCEPTED:
        return res, None
    cmd = d["command"]
    p1, p2, p3, p4 = d["param1"], d["param2"], d["param3"], d["param4"]
    it = Item(command=cmd)
    if cmd in (0, 1):
        return M.MAV_MISSION_INVALID, None
    if cmd == M.MAV_CMD_NAV_WAYPOINT:
        it.param1 = float(_u16(p1))  # copter: hold time, whole seconds
    elif cmd == M.MAV_CMD_NAV_LOITER_UNLIM:
        it.param3 = float(_u16(abs(p3))) * (-1 if p3 < 0 else 1)
    elif cmd == M.MAV_CMD_NAV_LOITER_TURNS:
        turns = p1 * 256.0 if 0 < p1 < 1 else p1
        it.param1 = float(min(255, int(turns)))
        if 0 < p1 < 1:
            it.param1 /= 256.0
        r = abs(p3)
        it.param3 = float(int(r) if r <= 255 else min(255, int(r * 0.1)) * 10)
        if p3 < 0:
            it.param3 = -it.param3
        it.param4 = 1.0 if p4 > 0 else 0.0
    elif cmd == M.MAV_CMD_NAV_LOITER_TIME:
        it.param1 = float(_u16(p1))
        it.param3 = -1.0 if p3 < 0 else 1.0
        it.param4 = 1.0 if p4 > 0 else 0.0
    elif cmd == M.MAV_CMD_NAV_RETURN_TO_LAUNCH:
        pass
    elif cmd == M.MAV_CMD_NAV_LAND:
        it.param1 = float(_u16(p1))
        # only the sign of param4 survives storage (loiter_ccw bit)
        it.param4 = -1.0 if (not math.isnan(p4) and p4 < 0) else 1.0
    elif cmd == M.MAV_CMD_NAV_TAKEOFF:
        it.param1 = float(_u16(p1))
    elif cmd == M.MAV_CMD_NAV_CONTINUE_AND_CHANGE_ALT:
        it.param1 = float(_u16(p1))
    elif cmd == M.MAV_CMD_NAV_LOITER_TO_ALT:
        it.param2 = float(_u16(abs(p2))) * (-1 if p2 < 0 else 1)
        it.param4 = 1.0 if p4 > 0 else 0.0
    elif cmd == M.MAV_CMD_NAV_SPLINE_WAYPOINT:
        it.param1 = float(_u16(p1))
    elif cmd == M.MAV_CMD_NAV_GUIDED_ENABLE:
        it.param1 = float(_u16(p1))
    elif cmd == M.MAV_CMD_NAV_DELAY:
        it.param1 = f32(p1)
        it.param2, it.param3, it.param4 = float(_i8(p2)), float(_i8(p3)), float(_i8(p4))
    elif cmd == M.MAV_CMD_CONDITION_DELAY:
        it.param1 = f32(p1)
    elif cmd == M.MAV_CMD_CONDITION_DISTANCE:
        it.param1 = f32(p1)
    elif cmd == M.MAV_CMD_CONDITION_YAW:
        it.param1, it.param2 = f32(p1), f32(p2)
        it.param3, it.param4 = float(_i16(p3) if -128 <= int(p3) <= 127 else 0), float(_u8(p4))
    elif cmd in (M.MAV_CMD_DO_JUMP, 601):
        it.param1, it.param2 = float(_u16(p1)), float(_i16(p2))
    elif cmd == M.MAV_CMD_DO_CHANGE_SPEED:
        it.param1, it.param2, it.param3 = float(_u8(p1)), f32(p2), f32(p3)
    elif cmd in (M.MAV_CMD_DO_SET_HOME, M.MAV_CMD_DO_SET_ROI, M.MAV_CMD_DO_SET_ROI_LOCATION,
                 M.MAV_CMD_DO_SET_ROI_NONE, M.MAV_CMD_DO_FENCE_ENABLE, M.MAV_CMD_DO_PARACHUTE,
                 M.MAV_CMD_DO_SPRAYER, M.MAV_CMD_DO_SET_RESUME_REPEAT_DIST):
        it.param1 = float(_u16(p1))
    elif cmd == M.MAV_CMD_DO_SET_RELAY:
        it.param1, it.param2 = float(_u8(p1)), float(_u8(p2))
    elif cmd == M.MAV_CMD_DO_SET_SERVO:
        it.param1, it.param2 = float(_u8(p1)), float(_u16(p2))
    elif cmd == M.MAV_CMD_DO_REPEAT_SERVO:
        it.param1, it.param2, it.param3 = float(_u8(p1)), float(_u16(p2)), float(_i16(p3))
        it.param4 = f32(p4)
    elif cmd == M.MAV_CMD_DO_REPEAT_RELAY:
        it.param1, it.param2, it.param3 = float(_u8(p1)), float(_i16(p2)), f32(p3)
    elif cmd in (M.MAV_CMD_DO_RETURN_PATH_START, M.MAV_CMD_DO_LAND_START,
                 M.MAV_CMD_DO_GO_AROUND, M.MAV_CMD_NAV_VTOL_TAKEOFF):
        pass
    elif cmd == M.MAV_CMD_DO_GRIPPER:
        it.param1, it.param2 = float(_u8(p1)), float(_u8(p2))
    elif cmd == M.MAV_CMD_DO_GUIDED_LIMITS:
        it.param1, it.param2, it.param3, it.param4 = float(_u16(p1)), f32(p2), f32(p3), f32(p4)
    elif cmd == M.MAV_CMD_NAV_VTOL_LAND:
        it.param1 = float(_u16(p1))
    elif cmd == M.MAV_CMD_NAV_PAYLOAD_PLACE:
        # max descent is stored in whole centimetres (cmd.p1 = param1*100)
        it.param1 = f32(_u16(f32(p1) * 100.0) * f32(0.01))
    elif cmd == M.MAV_CMD_DO_WINCH:
        it.param1, it.param2, it.param3, it.param4 = float(_u8(p1)), float(_u8(p2)), f32(p3), f32(p4)
    elif cmd == M.MAV_CMD_DO_AUX_FUNCTION:
        it.param1, it.param2 = float(_u16(p1)), float(_u8(p2))
    else:
        return M.MAV_MISSION_UNSUPPORTED, None

    if cmd in LOCATION_CMDS:
        x, y, z, frame = d["x"], d["y"], d["z"], d["frame"]
        if not check_lat(x):
            return M.MAV_MISSION_INVALID_PARAM5_X, None
        if not check_lng(y):
            return M.MAV_MISSION_INVALID_PARAM6_Y, None
        if math.isnan(z) or abs(z) >= 83000:
            return M.MAV_MISSION_INVALID_PARAM7, None
        if frame in (M.MAV_FRAME_MISSION, M.MAV_FRAME_GLOBAL, M.MAV_FRAME_GLOBAL_INT):
            it.frame, it.alt_frame = M.MAV_FRAME_GLOBAL, ABS
        elif frame in (M.MAV_FRAME_GLOBAL_RELATIVE_ALT, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT):
            it.frame, it.alt_frame = M.MAV_FRAME_GLOBAL_RELATIVE_ALT, REL
        elif frame in (M.MAV_FRAME_GLOBAL_TERRAIN_ALT, M.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT):
            it.frame, it.alt_frame = M.MAV_FRAME_GLOBAL_TERRAIN_ALT, TERRAIN
        else:
            return M.MAV_MISSION_UNSUPPORTED_FRAME, None
        it.x, it.y = int(x), int(y)
        alt_cm = int(f32(f32(z) * f32(100.0)))  # int32 cm, truncated
        it.z = f32(alt_cm * f32(0.01))
    return M.MAV_MISSION_ACCEPTED, it


def convert_fence_item(d: dict) -> tuple[int, Optional[Item]]:
    """MissionItemProtocol_Fence::convert_MISSION_ITEM_INT_to_AC_PolyFenceItem."""
    if d["frame"] not in (M.MAV_FRAME_GLOBAL, M.MAV_FRAME_GLOBAL_INT,
                          M.MAV_FRAME_GLOBAL_RELATIVE_ALT, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
                          M.MAV_FRAME_GLOBAL_TERRAIN_ALT, M.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT):
        return M.MAV_MISSION_UNSUPPORTED_FRAME, None
    cmd, p1 = d["command"], d["param1"]
    it = Item(command=cmd, frame=0, x=int(d["x"]), y=int(d["y"]), z=0.0)
    if cmd in (M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
               M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION):
        if p1 > 255:
            return M.MAV_MISSION_INVALID_PARAM1, None
        it.param1 = float(_u8(p1))
    elif cmd in (M.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION, M.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION):
        it.param1 = f32(p1)
    elif cmd == M.MAV_CMD_NAV_FENCE_RETURN_POINT:
        pass
    else:
        return M.MAV_MISSION_UNSUPPORTED, None
    return M.MAV_MISSION_ACCEPTED, it


def convert_rally_item(d: dict) -> tuple[int, Optional[Item]]:
    """MissionItemProtocol_Rally::convert_MISSION_ITEM_INT_to_RallyLocation (+ read-back)."""
    if d["command"] != M.MAV_CMD_NAV_RALLY_POINT:
        return M.MAV_MISSION_UNSUPPORTED, None
    if not check_lat(d["x"]):
        return M.MAV_MISSION_INVALID_PARAM5_X, None
    if not check_lng(d["y"]):
        return M.MAV_MISSION_INVALID_PARAM6_Y, None
    z = d["z"]
    if math.isnan(z) or z < -32768 or z > 32767:
        return M.MAV_MISSION_INVALID_PARAM7, None
    frame = d["frame"]
    if frame in (M.MAV_FRAME_GLOBAL, M.MAV_FRAME_GLOBAL_INT):
        out_frame, af = M.MAV_FRAME_GLOBAL, ABS
    elif frame in (M.MAV_FRAME_GLOBAL_RELATIVE_ALT, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT):
        out_frame, af = M.MAV_FRAME_GLOBAL_RELATIVE_ALT, REL
    elif frame in (M.MAV_FRAME_GLOBAL_TERRAIN_ALT, M.MAV_FRAME_GLOBAL_TERRAIN_ALT_INT):
        out_frame, af = M.MAV_FRAME_GLOBAL_TERRAIN_ALT, TERRAIN
    else:
        return M.MAV_MISSION_UNSUPPORTED_FRAME, None
    # RallyLocation.alt is an int16 of metres
    return M.MAV_MISSION_ACCEPTED, Item(command=M.MAV_CMD_NAV_RALLY_POINT, frame=out_frame,
                                        x=int(d["x"]), y=int(d["y"]), z=float(int(z)),
                                        alt_frame=af)


def validate_fence(items: list[Item], text) -> bool:
    """AC_PolyFence_loader::validate_fence, with its warning texts."""
    expecting = None
    remaining = 0
    orig = 0
    seen_return = False
    for it in items:
        c = it.command
        if c in (M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION,
                 M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION):
            vc = int(it.param1)
            if vc < 3:
                text(M.MAV_SEVERITY_WARNING, f"Invalid vertex count ({vc})")
                return False
            if remaining == 0:
                remaining = orig = vc
                expecting = c
            elif c != expecting:
                text(M.MAV_SEVERITY_WARNING, "Received incorrect vertex type (want=%u got=%u)"
                     % (_poly_type(expecting), _poly_type(c)))
                return False
            elif vc != orig:
                text(M.MAV_SEVERITY_WARNING, f"Unexpected vertex count want={orig} got={vc}")
                return False
            remaining -= 1
        elif c in (M.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION, M.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION):
            if remaining:
                text(M.MAV_SEVERITY_WARNING, "Received incorrect type (want=%u got=%u)"
                     % (_poly_type(expecting), _poly_type(c)))
                return False
            if not it.param1 > 0:
                text(M.MAV_SEVERITY_WARNING, "Non-positive circle radius")
                return False
        elif c == M.MAV_CMD_NAV_FENCE_RETURN_POINT:
            if remaining:
                text(M.MAV_SEVERITY_WARNING, "Received incorrect type (want=%u got=%u)"
                     % (_poly_type(expecting), _poly_type(c)))
                return False
            if seen_return:
                text(M.MAV_SEVERITY_WARNING, "Multiple return points")
                return False
            seen_return = True
        if not (check_lat(it.x) and check_lng(it.y)):
            text(M.MAV_SEVERITY_WARNING, "Bad lat or lon")
            return False
    if remaining:
        text(M.MAV_SEVERITY_INFO, "Incorrect item count")
        return False
    return True


def _poly_type(cmd) -> int:
    # AC_PolyFenceType numbering used in the texts
    return {M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_INCLUSION: 98,
            M.MAV_CMD_NAV_FENCE_POLYGON_VERTEX_EXCLUSION: 97,
            M.MAV_CMD_NAV_FENCE_CIRCLE_INCLUSION: 93,
            M.MAV_CMD_NAV_FENCE_CIRCLE_EXCLUSION: 92,
            M.MAV_CMD_NAV_FENCE_RETURN_POINT: 95}.get(cmd, 0)


MAX_ITEMS = {MISSION: 724, FENCE: 84, RALLY: 20}
UPLOAD_TIMEOUT_S = 8.0
RESEND_S = 1.0


class Store(TypingProtocol):
    """What the item protocol needs from the vehicle that owns the storage (the
    vehicle implements it; this module never imports the vehicle)."""

    now: float
    store: dict
    mission_total: int
    params: object

    def send_to(self, link, msg) -> None: ...
    def text(self, severity: int, s: str, link=None) -> None: ...
    def home_item(self) -> "Item": ...
    def truncate_mission(self, count: int) -> None: ...
    def write_mission_item(self, seq: int, it: "Item") -> int: ...
    def clear_mission(self) -> bool: ...
    def mission_changed(self) -> None: ...
    def fence_changed(self) -> None: ...
    def current_nav_index(self) -> int: ...


class Protocol:
    """One MissionItemProtocol instance (ArduPilot keeps one per mission type)."""

    def __init__(self, vehicle: Store, mtype: int):
        self.v = vehicle
        self.mtype = mtype
        self.receiving = False
        self.link = None
        self.dest = (0, 0)
        self.request_i = 0
        self.request_last = 0
        self.t_last_receive = 0.0
        self.t_last_request = 0.0
        self.new_items: list[Optional[Item]] = []  # fence only: atomic write at the end
        self.new_count = 0
        self.item_warning_sent = False
        self.request_warning_sent = False

    # storage views -------------------------------------------------------
    @property
    def items(self) -> list[Item]:
        return self.v.store[self.mtype]

    def item_count(self) -> int:
        if self.mtype == MISSION:
            return self.v.mission_total  # counts item 0 (home) once anything is stored
        if self.mtype == FENCE and self.receiving:
            return self.new_count
        return len(self.items)

    def get_item(self, seq: int) -> tuple[int, Optional[Item]]:
        if self.mtype == MISSION:
            if seq != 0 and seq >= self.item_count():
                return M.MAV_MISSION_INVALID_SEQUENCE, None
            if seq == 0:
                return M.MAV_MISSION_ACCEPTED, self.v.home_item()
            return M.MAV_MISSION_ACCEPTED, self.items[seq - 1]
        stored = self.v.store[self.mtype]
        if seq >= len(stored):
            return M.MAV_MISSION_INVALID_SEQUENCE, None
        return M.MAV_MISSION_ACCEPTED, stored[seq]

    # messages ------------------------------------------------------------
    def ack(self, link, msg, result: int) -> None:
        self.v.send_to(link, M.MAVLink_mission_ack_message(
            msg.get_srcSystem(), msg.get_srcComponent(), result, self.mtype))

    def _mavlink2_ok(self, link, msg) -> bool:
        """MissionItemProtocol::mavlink2_requirement_met: fence and rally need MAVLink 2."""
        if self.mtype == MISSION:
            return True
        buf = msg.get_msgbuf()
        if buf and buf[0] == 0xFE:  # a MAVLink 1 frame
            self.v.text(M.MAV_SEVERITY_WARNING, "Need mavlink2 for item transfer")
            self.ack(link, msg, M.MAV_MISSION_UNSUPPORTED)
            return False
        return True

    def _cancel_upload(self, link, msg) -> bool:
        if self.receiving:
            if (msg.get_srcSystem(), msg.get_srcComponent()) != self.dest:
                self.ack(link, msg, M.MAV_MISSION_DENIED)
                return False
            self._free()
        return True

    def _free(self) -> None:
        self.receiving = False
        self.link = None
        self.new_items = []

    def handle_count(self, link, msg) -> None:
        if not self._mavlink2_ok(link, msg):
            return
        if not self._cancel_upload(link, msg):
            return
        count = msg.count
        if count > MAX_ITEMS[self.mtype]:
            self.ack(link, msg, M.MAV_MISSION_NO_SPACE)
            self.v.text(M.MAV_SEVERITY_WARNING, f"Only {MAX_ITEMS[self.mtype]} items are supported")
            return
        if self.mtype == FENCE:
            self.new_items = [None] * count
            self.new_count = count
        elif self.mtype == MISSION:
            # mission.truncate(count): upload is applied item by item, not atomically
            self.v.truncate_mission(count)
        else:
            del self.items[count:]
            self.v.params.set("RALLY_TOTAL", len(self.items))
        if count == 0:
            self._complete(link, msg)
            return
        self.receiving = True
        self.link = link
        self.dest = (msg.get_srcSystem(), msg.get_srcComponent())
        self.request_i = 0
        self.request_last = count - 1
        self.item_warning_sent = False
        self.request_warning_sent = False
        now = self.v.now
        self.t_last_receive = now
        self._send_request(now)

    def _send_request(self, now: float) -> None:
        self.t_last_request = now
        # ArduPilot asks with MISSION_REQUEST, not MISSION_REQUEST_INT, even on MAVLink 2
        self.v.send_to(self.link, M.MAVLink_mission_request_message(
            self.dest[0], self.dest[1], self.request_i, self.mtype))

    def handle_item(self, link, msg, d: dict, was_float: bool) -> None:
        if was_float and not self.item_warning_sent:
            self.item_warning_sent = True
            self.v.text(M.MAV_SEVERITY_WARNING, "got MISSION_ITEM; GCS should send MISSION_ITEM_INT")
        if not self.receiving:
            self.ack(link, msg, M.MAV_MISSION_ERROR)
            return
        out = self.link
        if d["seq"] != self.request_i:
            self.ack(out, msg, M.MAV_MISSION_INVALID_SEQUENCE)
            return
        if (msg.get_srcSystem(), msg.get_srcComponent()) != self.dest:
            self.ack(out, msg, M.MAV_MISSION_DENIED)
            return
        seq = d["seq"]
        if self.mtype == MISSION:
            res, it = convert_mission_item(d)
            if res == M.MAV_MISSION_ACCEPTED:
                if it.command == M.MAV_CMD_DO_JUMP:
                    tgt = int(it.param1)
                    if (tgt >= self.item_count() and tgt > self.request_last) or tgt == 0:
                        res = M.MAV_MISSION_ERROR
                if res == M.MAV_MISSION_ACCEPTED:
                    res = self.v.write_mission_item(seq, it)
        elif self.mtype == FENCE:
            res, it = convert_fence_item(d)
            if res == M.MAV_MISSION_ACCEPTED:
                if seq >= self.new_count:
                    res = M.MAV_MISSION_INVALID_SEQUENCE
                else:
                    self.new_items[seq] = it
        else:
            res, it = convert_rally_item(d)
            if res == M.MAV_MISSION_ACCEPTED:
                if seq < len(self.items):
                    self.items[seq] = it
                elif seq == len(self.items) and seq < MAX_ITEMS[RALLY]:
                    self.items.append(it)
                    self.v.params.set("RALLY_TOTAL", len(self.items))
                else:
                    res = M.MAV_MISSION_ERROR
        if res != M.MAV_MISSION_ACCEPTED:
            self.ack(out, msg, res)
            self._free()
            return
        self.t_last_receive = self.v.now
        self.request_i += 1
        if self.request_i > self.request_last:
            self._complete(out, msg)
            return
        self._send_request(self.v.now)

    def _complete(self, link, msg) -> None:
        result = M.MAV_MISSION_ACCEPTED
        if self.mtype == MISSION:
            self.v.text(M.MAV_SEVERITY_INFO, "Flight plan received", link=link)
            self.v.mission_changed()
        elif self.mtype == FENCE:
            items = [i for i in self.new_items if i is not None]
            if len(items) != len(self.new_items) or not validate_fence(items, self.v.text):
                if len(items) == len(self.new_items):
                    self.v.text(M.MAV_SEVERITY_WARNING, "Fence validation failed")
                result = M.MAV_MISSION_ERROR
            else:
                self.v.store[FENCE] = items
                self.v.fence_changed()
        self.ack(link, msg, result)
        self._free()

    def handle_request_list(self, link, msg) -> None:
        if not self._mavlink2_ok(link, msg):
            return
        if self.receiving:
            self.ack(link, msg, M.MAV_MISSION_DENIED)
            return
        self.v.send_to(link, M.MAVLink_mission_count_message(
            msg.get_srcSystem(), msg.get_srcComponent(), self.item_count(), self.mtype))

    def handle_request(self, link, msg, want_int: bool) -> None:
        if not self._mavlink2_ok(link, msg):
            return
        if want_int and self.receiving:
            self.ack(link, msg, M.MAV_MISSION_DENIED)
            return
        res, it = self.get_item(msg.seq)
        if res != M.MAV_MISSION_ACCEPTED:
            if res == M.MAV_MISSION_INVALID_SEQUENCE and want_int:
                self.v.send_to(link, M.MAVLink_mission_count_message(
                    msg.get_srcSystem(), msg.get_srcComponent(), self.item_count(), self.mtype))
            self.ack(link, msg, res)
            return
        tgt = (msg.get_srcSystem(), msg.get_srcComponent())
        # ArduPilot's get_item compares the command *id* with the current nav
        # *index* when setting `current`; reproduced as is.
        current = 1 if (self.mtype == MISSION and it.command == self.v.current_nav_index()) else 0
        if want_int:
            self.v.send_to(link, M.MAVLink_mission_item_int_message(
                tgt[0], tgt[1], msg.seq, it.frame, it.command, current, 1,
                it.param1, it.param2, it.param3, it.param4, it.x, it.y, it.z, self.mtype))
        else:
            if it.command in HAS_LOCATION:
                x, y = f32(it.x * f32(1.0e-7)), f32(it.y * f32(1.0e-7))
            else:
                x, y = float(it.x), float(it.y)
            if not self.request_warning_sent:
                self.request_warning_sent = True
                self.v.text(M.MAV_SEVERITY_WARNING, "got MISSION_REQUEST; use MISSION_REQUEST_INT!")
            self.v.send_to(link, M.MAVLink_mission_item_message(
                tgt[0], tgt[1], msg.seq, it.frame, it.command, current, 1,
                it.param1, it.param2, it.param3, it.param4, x, y, it.z, self.mtype))

    def handle_clear_all(self, link, msg) -> None:
        ok = self._cancel_upload(link, msg)
        if not ok:
            return
        if self.mtype == MISSION:
            ok = self.v.clear_mission()
        elif self.mtype == FENCE:
            self.v.store[FENCE] = []
            self.v.fence_changed()
        else:
            self.v.store[RALLY] = []
            self.v.params.set("RALLY_TOTAL", 0)
        self.ack(link, msg, M.MAV_MISSION_ACCEPTED if ok else M.MAV_MISSION_ERROR)

    def update(self, now: float) -> None:
        if not self.receiving:
            return
        if now - self.t_last_receive > UPLOAD_TIMEOUT_S:
            name = {MISSION: "Mission", FENCE: "Fence", RALLY: "Rally"}[self.mtype]
            self.v.text(M.MAV_SEVERITY_WARNING, f"{name} upload timeout", link=self.link)
            self.v.send_to(self.link, M.MAVLink_mission_ack_message(
                self.dest[0], self.dest[1], M.MAV_MISSION_OPERATION_CANCELLED, self.mtype))
            self._free()
            return
        if now - self.t_last_request > RESEND_S:
            self._send_request(now)
