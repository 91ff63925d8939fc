"""Gripper-jam detection, fed the throttle a copter really shows around a drop (the built-in simulator's
and ArduCopter's VFR_HUD): a release must read as a release and a jam as a jam, whatever the drop
method and whatever speed the vehicle's clock runs at against ours.

What made every winch delivery at speed-up <= 10 a "gripper jam suspected": while the winch pays the
line out to its end, the parcel comes to rest on the ground and the copter hovers at its empty
throttle; those samples counted as "with the parcel", so before and after the release looked the
same. Speed-up 20 only escaped because the settle time after the release was wall-clock: 3 s of our
clock was 60 s of the vehicle's, past the hover it would have compared.
"""

import math

import pytest

from groundctl.core.plan import Parcel, build_plan, make_planner
from groundctl.protocol import FlightMonitor, FlightSpec
from tests.protocol.fakes import M, statustext, v

LOADED, EMPTY = 43, 31  # hover throttle % with and without a 1.2 kg parcel (the simulated quad's)


@pytest.fixture(scope="module")
def plans(request):
    from groundctl.core.scenario import load_scenario
    from tests.conftest import MISSIONS

    sc = load_scenario(MISSIONS / "cmac")
    planner = make_planner(sc.airspace, sc.fleet.hub("cmac"), sc.fleet.operations)
    return {m: build_plan(sc.airspace, sc.fleet, "cmac", sc.zone("lab-south"), Parcel(mass_kg=1.2), method=m,
                          planner=planner) for m in ("payload_place", "gripper", "winch")}


def seq_of(plan, label: str) -> int:
    return next(i for i, it in enumerate(plan.mission) if it.label == label)


class Copter:
    """Plays ArduCopter at a given speed-up: one vehicle second per step, 1/speedup of ours."""

    def __init__(self, plan, speedup: float):
        self.plan, self.m = plan, FlightMonitor(FlightSpec.from_plan(plan))
        self.dt = 1.0 / speedup
        self.rx, self.ms = 0.0, 300_000
        self.armed, self.seq = False, 0
        self.lat, self.lon, self.alt = plan.hub.lat, plan.hub.lon, 0.0
        self.thr, self.climb, self.gs, self.line = 0, 0.0, 0.0, None

    def feed(self, msg):
        self.m.feed(msg, self.rx)

    def step(self, n: int = 1, **kw):
        for k, val in kw.items():
            setattr(self, k, val)
        for _ in range(n):
            self.rx += self.dt
            self.ms += 1000
            self.alt += self.climb
            base = M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (M.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0)
            msgs = [M.MAVLink_heartbeat_message(2, 3, base, 3, 4, 3),
                    M.MAVLink_global_position_int_message(self.ms, round(self.lat * 1e7), round(self.lon * 1e7),
                                                          round((584 + self.alt) * 1000), round(self.alt * 1000),
                                                          0, 0, round(-self.climb * 100), 0),
                    M.MAVLink_vfr_hud_message(self.gs, self.gs, 0, self.thr, 584 + self.alt, self.climb),
                    M.MAVLink_mission_current_message(self.seq, len(self.plan.mission), 2, 1)]
            if self.line is not None:
                msgs.append(M.MAVLink_winch_status_message(self.ms * 1000, self.line, 0.0, math.nan, math.nan,
                                                           math.nan, 32767, 1))
            for msg in msgs:
                self.feed(v(msg))
            self.m.poll(self.rx)

    def text(self, s: str):
        for c in statustext(s):
            self.feed(c)

    def fly_out(self):
        p = self.plan
        self.step(2)
        self.step(1, armed=True, seq=1, thr=LOADED)
        self.step(24, climb=2.5)                           # take off to 60 m
        self.step(1, climb=0.0, seq=3, gs=12.0)
        self.step(20, lat=(p.hub.lat + p.zone.lat) / 2, lon=(p.hub.lon + p.zone.lon) / 2)
        self.step(1, lat=p.zone.lat, lon=p.zone.lon, seq=seq_of(p, "over zone: weigh"), gs=0.0)
        self.step(6)                                       # the weigh hover with the parcel

    def kinds(self):
        return [e.kind for e in self.m.events]

    def failed(self):
        return next((e for e in self.m.events if e.kind == "drop_failed"), None)


def winch_drop(c: Copter, jammed: bool):
    p = c.plan
    hover_alt = p.mission[seq_of(p, "winch height")].alt
    c.step(1, seq=seq_of(p, "winch height"), climb=-1.5)
    c.step(round((60 - hover_alt) / 1.5) - 1)
    c.step(1, climb=0.0, seq=seq_of(p, "lowering"), line=0.0)
    while c.line < hover_alt - 0.3:                        # parcel hanging under the copter
        c.step(1, line=c.line + 0.6)
    c.step(30, thr=EMPTY, line=hover_alt + 0.5)            # parcel on the ground, line slack: light
    c.text("Gripper load releasing")
    c.step(1, seq=seq_of(p, "let go"))
    c.text("Gripper load released")
    c.step(3)
    c.step(1, seq=seq_of(p, "winding in"))
    while c.line > 0.0:
        lifted = jammed and c.line < hover_alt - 0.3
        c.step(1, line=max(0.0, c.line - 0.6), thr=LOADED if lifted else EMPTY)
    c.step(3)
    c.step(1, seq=seq_of(p, "climb back: weigh"), climb=2.5)
    c.step(round((60 - hover_alt) / 2.5))
    c.step(8, climb=0.0)                                   # the weigh hover after the drop


def gripper_drop(c: Copter, jammed: bool):
    p = c.plan
    drop_alt = p.mission[seq_of(p, "down to drop height")].alt
    c.step(1, seq=seq_of(p, "down to drop height"), climb=-1.5)
    c.step(round((60 - drop_alt) / 1.5) - 1)
    c.step(1, climb=0.0, seq=seq_of(p, "let go"))
    c.text("Gripper load releasing")
    c.step(1, thr=LOADED if jammed else EMPTY)
    c.text("Gripper load released")
    c.step(2)
    c.step(1, seq=seq_of(p, "climb back: weigh"), climb=2.5)
    c.step(round((60 - drop_alt) / 2.5))
    c.step(8, climb=0.0)


def payload_place_drop(c: Copter, jammed: bool):
    p = c.plan
    c.step(1, seq=seq_of(p, "payload place"), climb=-0.5)
    c.step(118)                                            # LAND_SPEED all the way down
    c.step(3, climb=0.0, thr=15)                           # parcel on the ground, thrust falling
    c.text("PayloadPlace: payload release thrust threshold: 0.2")
    c.text("PayloadPlace: Releasing the gripper")
    c.step(2, thr=EMPTY)                                   # still sitting on (or beside) the parcel
    c.step(1, climb=2.5, thr=LOADED + 4 if jammed else EMPTY + 4)
    c.step(23)
    c.step(1, seq=seq_of(p, "climbed back: weigh"), climb=0.0, thr=LOADED if jammed else EMPTY)
    c.step(8)


DROPS = {"winch": winch_drop, "gripper": gripper_drop, "payload_place": payload_place_drop}


@pytest.mark.parametrize("speedup", [1, 10, 20, 200])
@pytest.mark.parametrize("method", list(DROPS))
def test_a_release_is_a_release_at_any_speed(plans, method, speedup):
    c = Copter(plans[method], speedup)
    c.fly_out()
    DROPS[method](c, jammed=False)
    assert "released" in c.kinds(), c.kinds()
    assert c.failed() is None, c.failed().message


@pytest.mark.parametrize("speedup", [1, 10, 20, 200])
@pytest.mark.parametrize("method", list(DROPS))
def test_a_jam_is_caught_at_any_speed(plans, method, speedup):
    c = Copter(plans[method], speedup)
    c.fly_out()
    DROPS[method](c, jammed=True)
    f = c.failed()
    assert f is not None and "gripper jam suspected" in f.message, c.kinds()
    assert f.data["throttle_before_pct"] == LOADED and f.data["throttle_after_pct"] >= LOADED


def winch_drop_unseen_line(c: Copter, jammed: bool):
    """The same winch drop with no WINCH_STATUS at all."""
    p = c.plan
    hover_alt = p.mission[seq_of(p, "winch height")].alt
    c.step(1, seq=seq_of(p, "winch height"), climb=-1.5)
    c.step(round((60 - hover_alt) / 1.5) - 1)
    c.step(1, climb=0.0, seq=seq_of(p, "lowering"))
    c.step(35)                                             # paying out, parcel hanging
    c.step(30, thr=EMPTY)                                  # parcel on the ground
    c.text("Gripper load releasing")
    c.step(4, seq=seq_of(p, "let go"))
    c.step(10, seq=seq_of(p, "winding in"))
    c.step(30, thr=LOADED if jammed else EMPTY)
    c.step(1, seq=seq_of(p, "climb back: weigh"), climb=2.5)
    c.step(round((60 - hover_alt) / 2.5))
    c.step(8, climb=0.0)


@pytest.mark.parametrize("jammed", [False, True])
def test_winch_without_winch_status(plans, jammed):
    """ArduCopter streams WINCH_STATUS only when asked (STREAM_EXTRA1): without it, the mission says when the
    line is surely in (before the lowering item, after the wind-in item)."""
    c = Copter(plans["winch"], 10)
    c.fly_out()
    winch_drop_unseen_line(c, jammed)
    assert "released" in c.kinds()
    f = c.failed()
    assert (f is not None and "jam" in f.message) == jammed, f and f.message
