"""QGC WPL 110 text files: a mission as QGroundControl, Mission Planner and MAVProxy write it, and the
fence and rally files Mission Planner loads.

Mission Planner (GCSViews/FlightPlanner.cs) keeps fence and rally items in its plan grid when the
mission type box says FENCE or RALLY; it saves the grid as QGC WPL 110 with a home line first
(seq 0) and the items after it, and on loading drops that first line (readQGC110wpfile:
`cmds.RemoveAt(0)` for FENCE and RALLY). MAVProxy's `fence load` / `rally load` (pymavlink mavwp)
take every line as an item, so a file without the home line is read here too.
"""

from __future__ import annotations

from groundctl.core import mavcmd as C
from groundctl.core.mission import MissionItem
from groundctl.errors import InputError


def _line(seq: int, it: MissionItem, current: int = 0) -> str:
    vals = [seq, current, it.frame, it.command, it.param1, it.param2, it.param3, it.param4,
            f"{it.lat:.8f}", f"{it.lon:.8f}", f"{it.alt:.6f}", it.autocontinue]
    return "\t".join(str(v) if not isinstance(v, float) else repr(v) for v in vals)


def to_wpl(mission: list[MissionItem]) -> str:
    """QGC WPL 110: one line per item, tab separated; item 0 is home with current=1."""
    lines = ["QGC WPL 110"] + [_line(seq, it, 1 if seq == 0 else 0) for seq, it in enumerate(mission)]
    return "\n".join(lines) + "\n"


def _home_line(home: MissionItem) -> str:
    return _line(0, MissionItem(C.NAV_WAYPOINT, C.FRAME_GLOBAL, lat=home.lat, lon=home.lon, alt=home.alt), 1)


def to_wpl_fence(fence: list[MissionItem], home: MissionItem) -> str:
    """The fence as Mission Planner saves it with the mission type box on FENCE: home, then the items."""
    lines = ["QGC WPL 110", _home_line(home)]
    lines += [_line(seq, it.with_(frame=C.FRAME_GLOBAL)) for seq, it in enumerate(fence, start=1)]
    return "\n".join(lines) + "\n"


def to_wpl_rally(rally: list[MissionItem], home: MissionItem) -> str:
    """The rally points as Mission Planner saves them with the mission type box on RALLY."""
    lines = ["QGC WPL 110", _home_line(home)] + [_line(seq, it) for seq, it in enumerate(rally, start=1)]
    return "\n".join(lines) + "\n"


def from_wpl(text: str) -> list[MissionItem]:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines or not lines[0].startswith("QGC WPL 110"):
        raise InputError("first line must be 'QGC WPL 110'", field="line 1")
    out = []
    for n, ln in enumerate(lines[1:], start=2):
        parts = ln.split("\t") if "\t" in ln else ln.split()
        if len(parts) != 12:
            raise InputError(f"expected 12 fields, got {len(parts)}", field=f"line {n}")
        try:
            seq, _cur, frame, cmd = (int(p) for p in parts[:4])
            p1, p2, p3, p4, lat, lon, alt = (float(p) for p in parts[4:11])
            auto = int(parts[11])
        except ValueError as e:
            raise InputError(f"not a number: {e}", field=f"line {n}") from None
        if seq != len(out):
            raise InputError(f"sequence {seq} out of order (expected {len(out)})", field=f"line {n}")
        if seq == 0 and cmd == 0:
            cmd = C.NAV_WAYPOINT  # Mission Planner writes an all-zero home line when it has no home
        out.append(MissionItem(cmd, frame, p1, p2, p3, p4, lat=lat, lon=lon, alt=alt, autocontinue=auto))
    return out


def wpl_kind(items: list[MissionItem]) -> tuple[int, list[MissionItem]]:
    """Which list a WPL file holds, and its items: fence or rally items after a home line (Mission
    Planner) or from the first line (MAVProxy); anything else is a mission."""
    for kind, cmds in ((C.MISSION_TYPE_FENCE, C.FENCE_COMMANDS), (C.MISSION_TYPE_RALLY, {C.NAV_RALLY_POINT})):
        if items and all(it.command in cmds for it in items):
            return kind, items
        if len(items) > 1 and all(it.command in cmds for it in items[1:]) and items[0].command == C.NAV_WAYPOINT:
            return kind, items[1:]
    return C.MISSION_TYPE_MISSION, items
