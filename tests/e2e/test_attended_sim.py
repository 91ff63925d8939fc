"""Attended drop on the built-in simulator over real sockets (issue 9, item 5): the drone holds above the
zone with the parcel, drops only after the recipient's clearance, and comes home with the parcel when
nobody clears it in time. Every duration is judged in vehicle time (the sim's time_boot_ms)."""

import asyncio

import pytest

from groundctl.core.plan import Parcel, build_plan
from groundctl.errors import Conflict
from groundctl.protocol.monitor import distance_m
from groundctl.runtime.fly import DeliveryFlight
from groundctl.runtime.link import MavLink
from groundctl.runtime.sim_args import sim_airframe_args
from sim.launch import start_sim
from tests.e2e.conftest import run

pytestmark = pytest.mark.timeout(300)
SPEEDUP = 40  # every judgement below is in vehicle time, so the sim may run fast


def attended_plan(scenario, planner, hold_s, method="gripper", zone="lab-south"):
    return build_plan(scenario.airspace, scenario.fleet, "cmac", scenario.zone(zone),
                      Parcel(mass_kg=1.0, handling=("signature",), attended=True), method=method,
                      planner=planner, hold_s=hold_s)


def fly(plan, act):
    """Fly on the sim; `act(flight, tries)` runs every 50 ms of wall time while the flight runs. Returns the
    report and the vehicle's own record: (time_boot_ms, lat, lon, alt_rel_m, gripper pwm, mission seq)."""
    track: list = []
    servo = f"servo{plan.airframe.gripper_servo}_raw"
    last = {"pwm": None, "seq": None}

    async def main(url):
        link = await MavLink(url).open(timeout_s=30.0)

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
        flight = DeliveryFlight(plan, link)
        task = asyncio.create_task(flight.run())
        try:
            state: dict = {}
            while not task.done():
                if flight.monitor is not None:
                    await act(flight, state)
                await asyncio.sleep(0.05)
            return await task
        finally:
            unsub()
            await link.close()

    with start_sim([*sim_airframe_args(plan), "--speedup", str(SPEEDUP)]) as (proc, urls):
        return run(main(urls[0])), track


def ev(report, kind):
    return next((e for e in report.events if e.kind == kind), None)


def kinds(report):
    return [e.kind for e in report.events]


def window(track, t0, t1):
    return [p for p in track if t0 <= p[0] <= t1]


def test_attended_hold_then_clear_to_drop_releases_in_the_zone(scenario, planner):
    plan = attended_plan(scenario, planner, hold_s=120)
    h = plan.hold
    assert h is not None and plan.mission[h.hold_seq].alt == plan.cruise_alt_m

    async def act(flight, st):
        mon = flight.monitor
        if "early" not in st and mon.airborne and not mon.holding:
            st["early"] = True
            with pytest.raises(Conflict, match="not holding"):  # the recipient cannot clear it from afar
                await flight.clear_to_drop("recipient")
        left = mon.hold_left_s()
        # the recipient clears after 20 vehicle seconds of hold
        if "cleared" not in st and mon.awaiting_clearance and left is not None and left < h.hold_s - 20:
            st["cleared"] = True
            view = await flight.clear_to_drop("recipient")
            assert view["cleared_by"] == "recipient" and not view["awaiting_clearance"]
            with pytest.raises(Conflict, match="already cleared"):
                await flight.clear_to_drop("operator")

    r, track = fly(plan, act)
    k = kinds(r)
    assert r.outcome == "delivered" and r.reason is None, [(e.kind, e.message) for e in r.events]
    assert k.index("holding_for_recipient") < k.index("cleared_to_drop") < k.index("released")
    hold_ev, clear_ev = ev(r, "holding_for_recipient"), ev(r, "cleared_to_drop")
    held = (clear_ev.time - hold_ev.time).total_seconds()  # vehicle time
    # cleared once 20 vehicle seconds had passed (later on a busy machine: the sim runs on meanwhile), and
    # well inside the hold: the drone was still waiting
    assert 19.5 <= held < h.hold_s - 5, held
    assert clear_ev.data["by"] == "recipient"
    start_ms = hold_ev.data["deadline_boot_ms"] - h.hold_s * 1000
    # while it held (vehicle time): over the zone, at cruise height, the gripper closed on the parcel
    during = window(track, start_ms + 2000, start_ms + held * 1000 - 500)
    assert len(during) > 20
    grab_pwm = 1900
    for t, lat, lon, alt, pwm, seq in during:
        assert distance_m(lat, lon, plan.zone.lat, plan.zone.lon) < 3.0, (t, lat, lon)
        assert abs(alt - plan.cruise_alt_m) < 1.5, (t, alt)
        assert pwm == grab_pwm and seq == h.hold_seq, (t, pwm, seq)
    assert r.parcel == "delivered" and r.drop_distance_m is not None and r.drop_distance_m < 3.0
    rel = ev(r, "released")
    assert rel.alt_rel_m < plan.ops.drop_alt_m + 3  # released near drop height, after the descent
    print(f"sim clear: held {held:.1f} s (vehicle) at {sum(p[3] for p in during) / len(during):.1f} m, "
          f"max {max(distance_m(p[1], p[2], plan.zone.lat, plan.zone.lon) for p in during):.1f} m off centre; "
          f"released at {rel.alt_rel_m:.1f} m, {r.drop_distance_m} m from the centre")


def test_attended_hold_times_out_and_comes_home_with_the_parcel(scenario, planner):
    plan = attended_plan(scenario, planner, hold_s=30, method="payload_place")
    h = plan.hold

    async def act(flight, st):
        mon = flight.monitor
        if mon.recipient_absent and "late" not in st:
            st["late"] = True
            with pytest.raises(Conflict, match="on its way home|left the zone"):
                await flight.clear_to_drop("recipient")

    r, track = fly(plan, act)
    k = kinds(r)
    detail = [(e.kind, e.message) for e in r.events]
    assert r.outcome == "returned_with_parcel" and r.reason == "recipient_absent", detail
    assert r.parcel == "aboard" and r.drop_lat is None and r.drop_distance_m is None
    assert "released" not in k and "drop_failed" not in k and "cleared_to_drop" not in k, detail
    assert r.end_distance_from_hub_m is not None and r.end_distance_from_hub_m < 25
    hold_ev, gone = ev(r, "holding_for_recipient"), ev(r, "recipient_absent")
    held = (gone.time - hold_ev.time).total_seconds()
    # the vehicle's timer starts once it is over the point: at least the hold, a moment more
    assert h.hold_s <= held <= h.hold_s + 5, held
    assert gone.data["reason"] == "recipient_absent"
    start_ms = hold_ev.data["deadline_boot_ms"] - h.hold_s * 1000
    during = window(track, start_ms + 2000, start_ms + (held - 1) * 1000)
    assert all(abs(p[3] - plan.cruise_alt_m) < 1.5 and distance_m(p[1], p[2], plan.zone.lat, plan.zone.lon) < 3
               for p in during), during[:3]
    # never below the hold height over the zone afterwards: the payload place never started
    after = [p for p in track if p[0] > start_ms and distance_m(p[1], p[2], plan.zone.lat, plan.zone.lon) < 30]
    assert min(p[3] for p in after) > plan.cruise_alt_m - 2, min(p[3] for p in after)
    assert all(p[5] != h.clear_seq for p in track), "the drop item was never current"
    print(f"sim timeout: held {held:.1f} s (vehicle; hold {h.hold_s:g} s), lowest over the zone "
          f"{min(p[3] for p in after):.1f} m, home {r.end_distance_from_hub_m} m from the hub")


def test_operator_abort_during_the_hold_comes_home_with_the_parcel(scenario, planner):
    plan = attended_plan(scenario, planner, hold_s=300)

    async def act(flight, st):
        if "aborted" not in st and flight.monitor.awaiting_clearance:
            st["aborted"] = True
            await flight.abort("rtl")

    r, _ = fly(plan, act)
    k = kinds(r)
    assert r.outcome == "aborted" and r.parcel == "aboard", [(e.kind, e.message) for e in r.events]
    assert "released" not in k and "recipient_absent" not in k and "return_route" in k
    assert k.index("holding_for_recipient") < k.index("aborted")
    # the flight was far shorter than the hold: the abort ended it, not the timer
    assert r.flight_time_s < plan.nominal_time_s() - plan.hold.hold_s + 60
