"""Attended drop against real ArduPilot SITL (arducopter), when ARDUPILOT_SITL is set (issue 9, item 5).

The hold is ArduPilot's own NAV_LOITER_TIME followed by a forward DO_JUMP past the drop; the clearance is
MAV_CMD_DO_SET_MISSION_CURRENT to the drop (see groundctl/protocol/attended.py for the source lines).
Every duration is the vehicle's (time_boot_ms), so SITL's speed-up and this machine's load do not matter.
"""

import asyncio
import os
import shutil

import pytest

from groundctl.core.plan import Parcel, build_plan
from groundctl.errors import Conflict
from groundctl.protocol.monitor import distance_m
from groundctl.runtime.fly import DeliveryFlight
from groundctl.runtime.link import MavLink
from groundctl.runtime.sitl import delivery_params, start_sitl
from tests.e2e.conftest import NEEDS_SITL, run

pytestmark = [pytest.mark.sitl, pytest.mark.timeout(1200), NEEDS_SITL]

SPEEDUP = float(os.environ.get("GROUNDCTL_SITL_SPEEDUP", "5"))


def fly_sitl(plan, clear_after_s):
    """Fly on SITL; the recipient clears `clear_after_s` vehicle seconds into the hold (None: never).
    Returns the report and the vehicle's record: (time_boot_ms, lat, lon, alt_rel_m, gripper pwm, seq)."""
    h = plan.hub
    sitl = start_sitl(h.lat, h.lon, h.elevation_m, h.heading_deg, speedup=SPEEDUP, params=delivery_params(plan))
    servo = f"servo{plan.airframe.gripper_servo}_raw"
    track: list = []
    last = {"pwm": None, "seq": None}

    async def main():
        link = await MavLink(sitl.url).open(timeout_s=60.0)

        def on_msg(msg, now):
            t = msg.get_type()
            if t == "SERVO_OUTPUT_RAW":
                last["pwm"] = getattr(msg, servo)
            elif t == "MISSION_CURRENT":
                last["seq"] = msg.seq
            elif t == "GLOBAL_POSITION_INT" and (msg.lat or msg.lon):
                track.append((msg.time_boot_ms, msg.lat * 1e-7, msg.lon * 1e-7, msg.relative_alt / 1000,
                              last["pwm"], last["seq"]))

        unsub = link.subscribe(None, on_msg)
        flight = DeliveryFlight(plan, link, ready_timeout_s=180)
        task = asyncio.create_task(flight.run())
        cleared = late = False
        try:
            while not task.done():
                mon = flight.monitor
                left = mon.hold_left_s() if mon is not None else None
                if (clear_after_s is not None and not cleared and mon is not None and mon.awaiting_clearance
                        and left is not None and left < plan.hold.hold_s - clear_after_s):
                    cleared = True
                    await flight.clear_to_drop("recipient")
                if clear_after_s is None and not late and mon is not None and mon.recipient_absent:
                    late = True
                    with pytest.raises(Conflict):
                        await flight.clear_to_drop("recipient")
                await asyncio.sleep(0.1)
            return await task
        finally:
            unsub()
            await link.close()

    try:
        return run(main(), timeout=1150), track
    finally:
        sitl.stop()
        shutil.rmtree(sitl.workdir, ignore_errors=True)


def attended_plan(scenario, planner, hold_s):
    return build_plan(scenario.airspace, scenario.fleet, "cmac", scenario.zone("lab-south"),
                      Parcel(mass_kg=1.0, handling=("signature", "age_check"), attended=True),
                      method="payload_place", planner=planner, hold_s=hold_s)


def ev(report, kind):
    return next((e for e in report.events if e.kind == kind), None)


def hold_track(track, hold_ev, hold_s, until_s):
    start = hold_ev.data["deadline_boot_ms"] - hold_s * 1000
    return [p for p in track if start + 3000 <= p[0] <= start + (until_s - 1) * 1000]


def test_sitl_attended_hold_then_clear_to_drop(scenario, planner):
    plan = attended_plan(scenario, planner, hold_s=90)
    h = plan.hold
    r, track = fly_sitl(plan, clear_after_s=20)
    detail = [(e.kind, e.message) for e in r.events]
    k = [e.kind for e in r.events]
    assert r.outcome in ("delivered", "delivered_with_incidents") and r.parcel == "delivered", detail
    assert k.index("holding_for_recipient") < k.index("cleared_to_drop") < k.index("released"), detail
    hold_ev, clear_ev, rel = ev(r, "holding_for_recipient"), ev(r, "cleared_to_drop"), ev(r, "released")
    held = (clear_ev.time - hold_ev.time).total_seconds()
    assert 19.5 <= held < h.hold_s - 5, held  # cleared after 20 vehicle seconds, while it still held
    during = hold_track(track, hold_ev, h.hold_s, held)
    assert len(during) > 10
    off = max(distance_m(p[1], p[2], plan.zone.lat, plan.zone.lon) for p in during)
    alts = [p[3] for p in during]
    assert off < 3.0 and max(abs(a - plan.cruise_alt_m) for a in alts) < 2.0, (off, min(alts), max(alts))
    assert all(p[4] == 1900 and p[5] == h.hold_seq for p in during), {(p[4], p[5]) for p in during}
    assert r.drop_distance_m is not None and r.drop_distance_m < 3.0
    assert rel.alt_rel_m < 3.0  # payload place: released on the ground
    print(f"SITL clear: held {held:.1f} s (vehicle) at {min(alts):.1f}-{max(alts):.1f} m, {off:.1f} m off centre at "
          f"most; released at {rel.alt_rel_m:.1f} m, {r.drop_distance_m} m from the centre; outcome {r.outcome}")


def test_sitl_attended_hold_times_out_home_with_the_parcel(scenario, planner):
    plan = attended_plan(scenario, planner, hold_s=30)
    h = plan.hold
    r, track = fly_sitl(plan, clear_after_s=None)
    detail = [(e.kind, e.message) for e in r.events]
    k = [e.kind for e in r.events]
    assert r.outcome == "returned_with_parcel" and r.reason == "recipient_absent", detail
    assert r.parcel == "aboard" and r.drop_lat is None and "released" not in k and "drop_failed" not in k, detail
    hold_ev, gone = ev(r, "holding_for_recipient"), ev(r, "recipient_absent")
    held = (gone.time - hold_ev.time).total_seconds()
    assert h.hold_s <= held <= h.hold_s + 6, held
    during = hold_track(track, hold_ev, h.hold_s, held)
    alts = [p[3] for p in during]
    off = max(distance_m(p[1], p[2], plan.zone.lat, plan.zone.lon) for p in during)
    assert off < 3.0 and max(abs(a - plan.cruise_alt_m) for a in alts) < 2.0, (off, min(alts), max(alts))
    assert all(p[4] == 1900 for p in track if p[0] > during[0][0]), "the gripper never opened"
    assert all(p[5] != h.clear_seq for p in track), "the drop item was never current"
    assert r.end_distance_from_hub_m is not None and r.end_distance_from_hub_m < 25
    print(f"SITL timeout: held {held:.1f} s (vehicle; hold {h.hold_s:g} s) at {min(alts):.1f}-{max(alts):.1f} m, "
          f"{off:.1f} m off centre at most; landed {r.end_distance_from_hub_m} m from the hub, parcel {r.parcel}")
