"""Mission items in ArduPilot's dialect, and comparison of uploaded vs read-back items by meaning."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from groundctl.core import mavcmd as C


@dataclass(frozen=True)
class MissionItem:
    """One MISSION_ITEM_INT's content. lat/lon in degrees; alt in metres in the item's frame."""

    command: int
    frame: int = C.FRAME_GLOBAL_RELATIVE_ALT
    param1: float = 0.0
    param2: float = 0.0
    param3: float = 0.0
    param4: float = 0.0
    lat: float = 0.0
    lon: float = 0.0
    alt: float = 0.0
    autocontinue: int = 1
    label: str = ""  # for people (plan summaries, .plan comments); never sent

    @property
    def name(self) -> str:
        return C.NAMES.get(self.command, f"MAV_CMD_{self.command}")

    @property
    def is_nav(self) -> bool:
        return self.command in C.NAV_COMMANDS

    def params(self) -> tuple[float, float, float, float]:
        return (self.param1, self.param2, self.param3, self.param4)

    def with_(self, **kw) -> "MissionItem":
        return replace(self, **kw)


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= tol


def differences(sent: MissionItem, got: MissionItem, mission_type: int, seq: int) -> list[str]:
    """Why `got` (read back from the vehicle) does not mean the same as `sent`; empty if it does.

    Differences ArduPilot introduces that are not errors (DESIGN.md, checked in AP_Mission.cpp and
    AC_PolyFence_loader.cpp): frames read back without _INT; item 0 of a mission is the real home;
    fence items come back with frame 0 and altitude 0; rally altitudes in whole metres; NAV_LAND
    param4 reduced to its sign; storage in float/int32 rounds params and 1e-7 degree positions.
    """
    if mission_type == C.MISSION_TYPE_MISSION and seq == 0:
        return []  # home: the vehicle writes its own
    out = []
    if sent.command != got.command:
        return [f"command {sent.name} sent, {got.name} read back"]
    fence = mission_type == C.MISSION_TYPE_FENCE
    located = sent.command in C.STORED_IN_LOCATION
    if located and not fence and C.FRAME_MEANING.get(sent.frame, sent.frame) != C.FRAME_MEANING.get(got.frame, got.frame):
        out.append(f"frame {sent.frame} sent, {got.frame} read back")
    sp, gp = list(sent.params()), list(got.params())
    # AP_Mission keeps only a direction bit for these (loiter_ccw = value < 0) and reads back -1 or 1;
    # NAV_LOITER_TIME's param4 is the loiter_xtrack flag (value > 0), read back as 0 or 1.
    sign = lambda x: -1.0 if x < 0 else 1.0  # noqa: E731
    if sent.command == C.NAV_LAND:
        sp[3], gp[3] = sign(sp[3]), sign(gp[3])
    if sent.command == C.NAV_LOITER_TIME:
        sp[2], gp[2] = sign(sp[2]), sign(gp[2])
        sp[3], gp[3] = float(sp[3] > 0), float(gp[3] > 0)
    if sent.command in (C.NAV_WAYPOINT, C.NAV_TAKEOFF, C.NAV_LAND, C.NAV_PAYLOAD_PLACE, C.NAV_RALLY_POINT):
        sp[3] = gp[3] = 0.0  # yaw: ArduPilot stores it coarsely or not at all for these
    if sent.command in (C.NAV_TAKEOFF,):
        sp[0] = gp[0] = 0.0  # pitch: plane only, not stored by copter
    for i, (a, b) in enumerate(zip(sp, gp)):
        tol = max(0.01, abs(a) * 1e-4)
        if not _close(a, b, tol):
            out.append(f"param{i + 1} {a:g} sent, {b:g} read back")
    if located and (abs(sent.lat - got.lat) > 2e-7 or abs(sent.lon - got.lon) > 2e-7):
        out.append(f"position ({sent.lat:.7f}, {sent.lon:.7f}) sent, ({got.lat:.7f}, {got.lon:.7f}) read back")
    if located and not fence:
        tol = 0.51 if mission_type == C.MISSION_TYPE_RALLY else 0.02
        if abs(sent.alt - got.alt) > tol:
            out.append(f"altitude {sent.alt:g} sent, {got.alt:g} read back")
    return out


def compare(sent: list[MissionItem], got: list[MissionItem], mission_type: int) -> list[str]:
    """Every mismatch between an uploaded list and its read-back, as sentences."""
    problems = []
    if len(sent) != len(got):
        problems.append(f"{len(sent)} items sent, {len(got)} read back")
    for seq, (a, b) in enumerate(zip(sent, got)):
        for d in differences(a, b, mission_type, seq):
            problems.append(f"item {seq} ({a.name}): {d}")
    return problems
