"""Fly one delivery: prepare the vehicle, upload and verify, arm, start, monitor, react, report."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections import deque
from typing import Any, Awaitable, Callable, Iterable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.core import mavcmd as C
from groundctl.core.geo import geodesic_distance_m
from groundctl.core.plan import FlightPlan
from groundctl.errors import CommandError, Conflict, GroundctlError, LinkError
from groundctl.protocol import FlightMonitor, FlightSpec, commands
from groundctl.protocol.energy_log import EnergyLog
from groundctl.runtime.events import DeliveryEvent, DeliveryReport, Progress, utcnow
from groundctl.protocol.command import Command
from groundctl.runtime.link import MavLink
from groundctl.runtime.before_takeoff import FLIGHT_STREAMS, BeforeTakeoff
from groundctl.runtime.vehicle import Vehicle

log = logging.getLogger(__name__)

EventSink = Callable[[DeliveryEvent], Awaitable[None] | None]


def fence_depth(plan: FlightPlan) -> Callable[[float, float], float | None] | None:
    """Metres a position is into the fence as uploaded (inside an exclusion, outside the inclusion):
    a breach's worst value. None when the plan has no horizontal fence."""
    from shapely.geometry import Point, Polygon  # noqa: PLC0415
    from shapely.ops import unary_union  # noqa: PLC0415

    from groundctl.core.geo import LocalFrame  # noqa: PLC0415
    from groundctl.core.planfiles import fence_groups  # noqa: PLC0415

    frame = LocalFrame(plan.hub.lat, plan.hub.lon)
    keep_out, keep_in = [], []
    for grp in fence_groups(list(plan.fence)):
        c = grp[0].command
        if c in (C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION, C.NAV_FENCE_POLYGON_VERTEX_INCLUSION) and len(grp) >= 3:
            shape = Polygon([frame.to_xy(it.lon, it.lat) for it in grp])
        elif c in (C.NAV_FENCE_CIRCLE_EXCLUSION, C.NAV_FENCE_CIRCLE_INCLUSION):
            shape = Point(frame.to_xy(grp[0].lon, grp[0].lat)).buffer(grp[0].param1)
        else:
            continue
        (keep_out if c in (C.NAV_FENCE_POLYGON_VERTEX_EXCLUSION, C.NAV_FENCE_CIRCLE_EXCLUSION) else keep_in).append(shape)
    if not keep_out and not keep_in:
        return None
    out = unary_union(keep_out) if keep_out else None
    inside = unary_union(keep_in) if keep_in else None

    def depth(lat: float, lon: float) -> float | None:
        p = Point(frame.to_xy(lon, lat))
        d = 0.0
        if out is not None and out.contains(p):
            d = max(d, out.exterior.distance(p) if out.geom_type == "Polygon" else out.boundary.distance(p))
        if inside is not None and not inside.contains(p):
            d = max(d, inside.distance(p))
        return round(d, 1)
    return depth


def _sitl_extras(plan: FlightPlan) -> dict[str, float]:
    """SITL's simulated gripper must be switched on and wired to the gripper's servo output."""
    return {"SIM_GRPS_ENABLE": 1, "SIM_GRPS_PIN": plan.airframe.gripper_servo}


class DeliveryFlight(BeforeTakeoff):
    """One delivery on one vehicle. `await run()` returns the report; `await abort()` from elsewhere."""

    def __init__(self, plan: FlightPlan, connection: "str | MavLink", *, sysid: int | None = None,
                 on_event: EventSink | None = None, on_progress: Callable[[Progress], None] | None = None,
                 resume: bool = False, seen_events: Iterable[str] = (), ready_timeout_s: float = 120.0,
                 flight_timeout_s: float | None = None, progress_hz: float = 2.0,
                 on_stage: Callable[[str], None] | None = None, prediction: Any = None,
                 lost_timeout_s: float | None = None) -> None:
        self.plan = plan
        # the verdict's EnergyReport (weather and calibration included): what the flight is compared with
        self.prediction = prediction
        self.energy_log = EnergyLog(plan.mission)
        self.connection = connection
        self.sysid = sysid
        self.on_event = on_event
        self.on_progress = on_progress
        self.on_stage = on_stage
        self.resume = resume
        # stored events (or just their kinds): the events also bring back incidents and the parcel's fate
        self.seen_events = list(seen_events)
        self.seen = [getattr(e, "kind", e) for e in self.seen_events]
        self.ready_timeout_s = ready_timeout_s
        self.flight_timeout_s = flight_timeout_s or max(600.0, plan.nominal_time_s() * 4 + 300)
        # silence this long in flight and the vehicle is `lost` (by default: when the flight times out)
        self.lost_timeout_s = lost_timeout_s or self.flight_timeout_s
        self.progress_hz = progress_hz
        self.events: list[DeliveryEvent] = []
        self.link: MavLink | None = None
        self.vehicle: Vehicle | None = None
        self.monitor: FlightMonitor | None = None
        self._abort_request: asyncio.Queue[str] = asyncio.Queue()
        self.texts: deque[str] = deque(maxlen=20)  # the vehicle's last STATUSTEXTs, for error messages
        self._energy_start_wh: float | None = None
        self._battery_start_pct: float | None = None
        self._clear_lock = asyncio.Lock()

    # -- public -----------------------------------------------------------------------------------
    async def abort(self, action: str = "rtl") -> None:
        if action not in ("rtl", "land"):
            raise GroundctlError(f"abort action must be 'rtl' or 'land', got {action!r}", field="action")
        await self._abort_request.put(action)

    async def clear_to_drop(self, by: str = "recipient") -> dict:
        """The recipient is there: end the attended hold and drop (MAV_CMD_DO_SET_MISSION_CURRENT to the
        first drop item, see protocol.attended). Conflict when the drone is not holding for them, or the
        hold is about to run out (the vehicle may already be turning home); CommandError when the
        autopilot does not take it (the hold then runs on and times out as planned)."""
        async with self._clear_lock:
            mon, v = self.monitor, self.vehicle
            why = "the flight has not started" if mon is None or v is None else mon.clearance_refusal()
            if why:
                raise Conflict(f"cannot clear the drop: {why}", field="clear_to_drop")
            seq = mon.spec.hold.clear_seq
            jump = Command(mavlink.MAV_CMD_DO_SET_MISSION_CURRENT, (float(seq), 0, 0, 0, 0, 0, 0))
            self._stage(f"cleared to drop by the {by}: mission item {seq}")
            mon.clearing(True)
            try:
                await v.command(jump, tries=3)
            except CommandError:
                mon.clearing(False)
                raise
            mon.cleared(asyncio.get_running_loop().time(), by)
            for ev in mon.take_events():
                await self._emit(ev)
            return mon.hold_view() or {}

    def hold_view(self) -> dict | None:
        """The attended hold as it stands (awaiting_clearance, hold_left_s in vehicle seconds), or None."""
        return self.monitor.hold_view() if self.monitor is not None else None

    async def run(self) -> DeliveryReport:
        loop = asyncio.get_running_loop()
        # a shared link (one socket, many vehicles by system id) stays open for the others
        own_link = not isinstance(self.connection, MavLink)
        self.link = MavLink(self.connection) if own_link else self.connection
        try:
            if own_link:
                await self.link.open(timeout_s=30.0)
            self.sysid = self.sysid or await self._first_sysid()
            self.vehicle = v = Vehicle(self.link, self.sysid)
            await v.wait_heartbeat(30.0)
            spec = self._spec()
            self.monitor = FlightMonitor(spec, v.state, seen=self.seen_events, clock_anchor=(loop.time(), utcnow()))
            v.listen(self._observe)
            if self.resume:
                self._stage("resuming: monitoring only")
                await v.request_streams(FLIGHT_STREAMS)
            else:
                await self._prepare(v)
            return await self._watch(v)
        except GroundctlError as e:
            await self._emit(DeliveryEvent("failed", message=str(e)))
            return self._report("failed")
        finally:
            if self.vehicle:
                self.vehicle.close()
            if own_link:
                await self.link.close()

    def _observe(self, msg, text, now: float) -> None:
        self.monitor.observe(msg, text, now)
        if msg.get_type() in ("BATTERY_STATUS", "SYS_STATUS"):
            s = self.vehicle.state
            if self.energy_log.start_wh is None and self.resume:
                self.energy_log.start(s.energy_consumed_wh)  # a resumed flight measures from here on
            home = (geodesic_distance_m(s.lon, s.lat, self.plan.hub.lon, self.plan.hub.lat)
                    if s.has_position else None)
            self.energy_log.update(self.monitor.phase, s.mission_seq, s.energy_consumed_wh, home)
        if text is not None:
            self.texts.append(str(getattr(text, "text", text)))

    # -- stages -----------------------------------------------------------------------------------
    def _stage(self, text: str) -> None:
        log.info("%s", text)
        if self.on_stage:
            self.on_stage(text)

    async def _first_sysid(self) -> int:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def hb(msg, now):
            if msg.get_type() == "HEARTBEAT" and msg.type != mavlink.MAV_TYPE_GCS and not fut.done():
                fut.set_result(msg.get_srcSystem())

        unsub = self.link.subscribe(None, hb)
        try:
            return await asyncio.wait_for(fut, 30.0)
        except asyncio.TimeoutError:
            raise LinkError(f"no vehicle HEARTBEAT on {self.link.url} within 30 s", field="connection") from None
        finally:
            unsub()

    def _spec(self) -> FlightSpec:
        wh_per_m = None
        reserve = 0.0
        try:
            from groundctl.core.energy import plan_energy

            e = self.prediction or plan_energy(self.plan, None, limits=False)  # the per-metre figure and reserve
            # an attended hold is time, not distance: spread over the metres it would make every metre
            # look dearer and bring the low-battery return early
            from groundctl.core.plan import HOLD_LABEL

            hold_wh = sum(le.energy_wh for le in getattr(e, "legs", []) if le.leg.label == HOLD_LABEL)
            if math.isfinite(e.needed_wh) and self.plan.distance_m > 0:
                wh_per_m = (e.needed_wh - hold_wh) / self.plan.distance_m
            reserve = e.reserve_wh
        except Exception as exc:  # the monitor still checks the reserve without a per-metre figure
            log.warning("no energy model for the monitor: %s", exc)
        return FlightSpec.from_plan(self.plan, wh_per_m=wh_per_m, reserve_wh=reserve,
                                    breach_depth_m=fence_depth(self.plan))

    async def _prepare(self, v: Vehicle) -> None:
        plan = self.plan
        self._stage("requesting telemetry")
        await v.request_streams(FLIGHT_STREAMS)
        self._stage("waiting for the EKF position")
        await v.wait_ready(self.ready_timeout_s)
        self._check_battery(v)
        await self._apply_params(v, {k: float(val) for k, val in plan.params.items()} | _sitl_extras(plan))
        for mtype, items, name in ((C.MISSION_TYPE_FENCE, plan.fence, "fence"),
                                   (C.MISSION_TYPE_RALLY, plan.rally, "rally"),
                                   (C.MISSION_TYPE_MISSION, plan.mission, "mission")):
            self._stage(f"uploading {name} ({len(items)} items) and reading it back")
            await v.upload_verified(mtype, items)
        await self._emit(DeliveryEvent("uploaded", message="mission, fence and rally uploaded and verified",
                                       data={"mission": len(plan.mission), "fence": len(plan.fence), "rally": len(plan.rally)}))
        self._stage("grabbing the parcel")
        await self._grab(v)
        self._stage("GUIDED, arming")
        self.monitor.expect_mode("GUIDED")
        await v.command(commands.set_mode("GUIDED"))
        await self._arm(v)
        self._energy_start_wh = v.state.energy_consumed_wh
        self.energy_log.start(v.state.energy_consumed_wh)
        self._battery_start_pct = v.state.battery_pct
        await self._start_mission(v)

    async def _watch(self, v: Vehicle) -> DeliveryReport:
        loop = asyncio.get_running_loop()
        mon = self.monitor
        start = loop.time()
        last_progress = 0.0
        while True:
            now = loop.time()
            mon.poll(now)
            for ev in mon.take_events():
                await self._emit(ev)
            for action, reason in mon.take_reactions():
                await self._react(v, action, reason)
            while not self._abort_request.empty():
                action = self._abort_request.get_nowait()
                mon.abort(now, f"operator abort: {action}")
                mon.take_reactions()  # the operator said what to do: that, not the monitor's generic RTL
                # an abort comes home the way the route went, like a low battery (RTL if it cannot)
                await self._react(v, "return" if action == "rtl" else action, "operator abort")
            if now - last_progress >= 1.0 / self.progress_hz:
                last_progress = now
                if self.on_progress:
                    self.on_progress(self._progress(v))
            kinds = {e.kind for e in self.events} | set(self.seen)
            if "landed" in kinds:
                if self.on_progress:
                    self.on_progress(self._progress(v))  # the last word: landed, nothing to go
                break
            st = v.state
            if (mon.phase == "preflight" and mon.armed_seen and not st.armed and st.last_heartbeat is not None
                    and st.last_heartbeat > start):
                # armed, never climbed, now disarmed: nothing will fly or land, the parcel is at the hub
                await self._emit(DeliveryEvent("failed", message="the vehicle disarmed on the ground without "
                                                                 "taking off: the parcel is still at the hub"))
                return self._report("failed")
            silent = mon.link_lost_since
            if mon.link_lost and silent is not None and now - silent > self.lost_timeout_s and mon.airborne:
                return await self._lost(now, f"no heartbeat for {now - silent:.0f} s")
            if now - start > self.flight_timeout_s:
                if mon.link_lost and mon.airborne:
                    return await self._lost(now, f"no heartbeat since {now - (silent or now):.0f} s; "
                                                 f"flight not finished after {self.flight_timeout_s:.0f} s")
                await self._emit(DeliveryEvent("failed", message=f"flight not finished after {self.flight_timeout_s:.0f} s"))
                return self._report("failed")
            await asyncio.sleep(0.1)
        mon.flush(loop.time())
        for ev in mon.take_events():
            await self._emit(ev)
        return self._report(mon.outcome())

    async def _lost(self, now: float, why: str) -> DeliveryReport:
        """The link never came back: the vehicle is where it was last heard, as far as anyone here knows."""
        mon = self.monitor
        mon.flush(now)
        for ev in mon.take_events():
            await self._emit(ev)
        s = mon.state
        d = mon.end_distance_m()
        where = f"last heard at {s.lat:.6f}, {s.lon:.6f}" if s.lat is not None else "never located"
        if d is not None:
            where += f", {d:.0f} m from the hub"
        await self._emit(DeliveryEvent("lost", time=mon.vehicle_time(now), lat=s.lat, lon=s.lon, alt_rel_m=s.alt_rel_m,
                                       message=f"{why}: {where}",
                                       data={"distance_from_hub_m": None if d is None else round(d, 1),
                                             "parcel": mon.parcel}))
        return self._report(mon.outcome(lost=True))

    async def _react(self, v: Vehicle, action: str, reason: str) -> None:
        if action == "return":
            if await self._return_by_route(v, reason):
                return
            action = "rtl"  # no way back along the route: the autopilot's own return, fence as the last defence
        # RTL flies a straight line to the nearest rally point, which can cross the very no-fly zones
        # the route bent round (and then breach the fence). SmartRTL retraces the path flown, simplified,
        # and may cut corners; RTL is the fallback when SmartRTL is refused (no path recorded yet).
        modes = {"rtl": ["SMART_RTL", "RTL"], "land": ["LAND"]}.get(action)
        if modes is None:
            log.info("reaction %s (%s): nothing to send", action, reason)
            return
        self._stage(f"{action.upper()}: {reason}")
        for mode in modes:
            self.monitor.expect_mode(mode)
        for _ in range(10):  # the link may be down right now (that can be the reason): keep trying
            for mode in modes:
                try:
                    await v.command(commands.set_mode(mode), tries=3)
                    return
                except CommandError as e:
                    log.warning("%s not accepted: %s", mode, e)
            await asyncio.sleep(1.0)

    async def _return_by_route(self, v: Vehicle, reason: str) -> bool:
        """Jump the running mission to its return leg (MAV_CMD_DO_SET_MISSION_CURRENT): home along the
        legs that were cleared of no-fly zones. GCS_Common.cpp handle_command_do_set_mission_current ->
        AP_Mission::set_current_cmd: in a running mission the jump is immediate and the DO items in
        between (the drop) are skipped; outside AUTO the mission waits at that item, and AUTO resumes
        it there (MIS_RESTART 0). False: no such item, or the autopilot refused: fall back to RTL."""
        mon = self.monitor
        if mon.homeward():
            self._stage(f"low battery: already on the way home along the route ({reason})")
            return True
        seq = mon.return_entry()
        if seq is None:
            return False
        jump = Command(mavlink.MAV_CMD_DO_SET_MISSION_CURRENT, (float(seq), 0, 0, 0, 0, 0, 0))
        self._stage(f"RETURN along the route from mission item {seq}: {reason}")
        mon.turning_back(seq)
        for _ in range(5):
            try:
                await v.command(jump, tries=3)
                if v.state.mode != "AUTO":
                    mon.expect_mode("AUTO")
                    await v.command(commands.set_mode("AUTO"), tries=3)
                mon.turned_back(seq, asyncio.get_running_loop().time())
                return True
            except CommandError as e:
                log.warning("mission jump to %d not accepted: %s", seq, e)
                await asyncio.sleep(1.0)
        mon.turning_back(None)
        return False

    # -- reroute in flight ---------------------------------------------------------------------------
    async def reroute(self, plan_fn: Callable[..., Any], *, restriction: str) -> dict:
        """A new restriction crosses the rest of the route: a new cleared route from where the vehicle is.

        `plan_fn(here_ll, seq, released, home)` returns a core.reroute.Reroute (home=True: straight back
        to the hub along a cleared route, parcel aboard) or raises NoRouteError. What is safe while
        flying AUTO, from ArduPilot's source: an upload is applied item by item (MissionItemProtocol::
        handle_mission_item -> AP_Mission::replace_cmd, no atomic swap), and ModeAuto::run's change
        detector (AP_Mission_ChangeDetector) restarts the current command from storage as soon as the
        next items differ, so in AUTO the vehicle can fly a half-written mission. So: GUIDED first (it
        holds at its stopping point), then the fence (AC_PolyFence_loader::write_fence replaces it whole
        at the end of the transfer) and the mission, each read back, then DO_SET_MISSION_CURRENT (the
        mission is stopped outside AUTO: AP_Mission::set_current_cmd only moves the index) and AUTO,
        which resumes there (MIS_RESTART 0). Any failure: the vehicle returns along a cleared route if
        one exists (events reroute_failed, rtl), else it stays holding (reroute_failed, holding)."""
        from groundctl.core.reroute import at_zone  # noqa: PLC0415
        from groundctl.errors import NoRouteError  # noqa: PLC0415

        async with self._clear_lock:
            mon, v = self.monitor, self.vehicle
            if mon is None or v is None or not mon.airborne or mon.phase in ("landed", "landing"):
                return {"result": "skipped", "reason": "not in the air"}
            if mon.link_lost:
                await self._reroute_failed(restriction, "the link to the vehicle is down: cannot upload a new route")
                return {"result": "failed", "reason": "link down"}
            s = v.state
            if s.mode != "AUTO":
                # RTL, LAND, an operator's abort: what the vehicle does now was chosen on purpose; not taken over
                await self._reroute_failed(restriction, f"the vehicle is in {s.mode}, not flying the mission: not rerouted")
                return {"result": "failed", "reason": f"mode {s.mode}"}
            seq, released = s.mission_seq or 1, mon.released
            if s.has_position and at_zone(self.plan, (s.lon, s.lat), seq, released):
                # a hold here would interrupt the drop; the way home is rerouted once the zone's items are flown
                return {"result": "later", "reason": "at the zone: its items are flown first"}
            t0 = s.time_boot_ms
            self._stage(f"REROUTE around restriction {restriction!r}: holding in GUIDED while the route is replaced")
            try:
                mon.expect_mode("GUIDED")
                await v.command(commands.set_mode("GUIDED"), tries=3)
            except (CommandError, LinkError) as e:
                await self._reroute_failed(restriction, f"GUIDED refused: {e}")
                return {"result": "failed", "reason": str(e)}
            await self._settle(v)
            here = (s.lon, s.lat)
            failure = None
            try:
                new = await asyncio.to_thread(plan_fn, here, seq, released, False)
            except GroundctlError as e:
                new, failure = None, f"no cleared route from here: {e}"
            if new is not None:
                t1 = s.time_boot_ms
                try:
                    await self._apply_route(v, new)
                except GroundctlError as e:
                    failure = f"upload or verify failed: {e}"
                else:
                    t2 = s.time_boot_ms
                    took = (t2 - t0) / 1000.0 if t0 is not None and t2 is not None else None
                    upload = (t2 - t1) / 1000.0 if t1 is not None and t2 is not None else None
                    await self._emit(DeliveryEvent(
                        "rerouted", time=mon.vehicle_time(asyncio.get_running_loop().time()),
                        message=f"around restriction {restriction!r}: {new.remaining_after_m / 1000:.2f} km to go "
                                f"(was {new.remaining_before_m / 1000:.2f} km)",
                        data={"restriction": restriction, "leg": new.leg, "resume_seq": new.resume_seq,
                              "distance_m": round(new.plan.distance_m, 1), "remaining_m": new.remaining_after_m,
                              "remaining_before_m": new.remaining_before_m, "extra_m": round(new.extra_m, 1),
                              "vehicle_s": took, "upload_verify_vehicle_s": upload, "route_out": [list(p) for p in new.plan.route_out.points_ll],
                              "route_back": [list(p) for p in new.plan.route_back.points_ll]}))
                    return {"result": "rerouted", "plan": new.plan, "reroute": new}
            await self._reroute_failed(restriction, failure or "unknown")
            home = None
            if not released:
                try:
                    home = await asyncio.to_thread(plan_fn, here, seq, released, True)
                except (GroundctlError, NoRouteError) as e:
                    log.info("no cleared route home: %s", e)
            if home is not None:
                try:
                    mon.turning_back(home.resume_seq)
                    await self._apply_route(v, home)
                    await self._emit(DeliveryEvent("rtl", message="home with the parcel along a cleared route",
                                                   data={"restriction": restriction, "remaining_m": home.remaining_after_m,
                                                         "route_back": [list(p) for p in home.plan.route_back.points_ll]}))
                    return {"result": "rtl", "plan": home.plan, "reroute": home}
                except GroundctlError as e:
                    mon.turning_back(None)
                    log.warning("return along a cleared route failed: %s", e)
            await self._emit(DeliveryEvent("holding", message=f"holding in {v.state.mode or 'GUIDED'} where it is: "
                                                              "no cleared route; the operator decides",
                                           data={"restriction": restriction}))
            return {"result": "holding", "reason": failure}

    async def _reroute_failed(self, restriction: str, why: str) -> None:
        self._stage(f"reroute failed: {why}")
        await self._emit(DeliveryEvent("reroute_failed", message=why, data={"restriction": restriction}))

    async def _settle(self, v: Vehicle, timeout_s: float = 10.0) -> None:
        """Wait for GUIDED to bring the vehicle to a stop: the new route starts where it then is."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        await asyncio.sleep(0.2)
        while loop.time() < end and (v.state.groundspeed_mps or 0.0) > 0.7:
            await asyncio.sleep(0.1)

    async def _apply_route(self, v: Vehicle, new: Any) -> None:
        """Fence, then mission, each read back; then the mission's current item, then AUTO."""
        plan = new.plan
        self._stage(f"uploading the new fence ({len(plan.fence)} items) and reading it back")
        await v.upload_verified(C.MISSION_TYPE_FENCE, plan.fence)
        self._stage(f"uploading the new mission ({len(plan.mission)} items) and reading it back")
        await v.upload_verified(C.MISSION_TYPE_MISSION, plan.mission)
        self.plan = plan
        import dataclasses  # noqa: PLC0415

        spec = dataclasses.replace(self.monitor.spec, mission=list(plan.mission), drop_seq=plan.drop_seq,
                                   hold=plan.hold, breach_depth_m=fence_depth(plan))
        self.monitor.replan(spec, new.resume_seq)
        self.energy_log._land_seq = max((i for i, it in enumerate(plan.mission) if it.command == C.NAV_LAND), default=None)
        await v.command(Command(mavlink.MAV_CMD_DO_SET_MISSION_CURRENT, (float(new.resume_seq), 0, 0, 0, 0, 0, 0)), tries=3)
        self.monitor.expect_mode("AUTO")
        await v.command(commands.set_mode("AUTO"), tries=3)

    async def _emit(self, ev: DeliveryEvent) -> None:
        if self.vehicle is not None and ev.lat is None and self.vehicle.state.has_position:
            s = self.vehicle.state
            ev.lat, ev.lon, ev.alt_rel_m = s.lat, s.lon, s.alt_rel_m
        self.events.append(ev)
        if self.on_event:
            r = self.on_event(ev)
            if inspect.isawaitable(r):
                await r

    def _progress(self, v: Vehicle) -> Progress:
        s = v.state
        to_go = eta = None
        if self.monitor.phase == "landed":
            to_go = eta = 0.0
        elif s.has_position:
            to_go = self._distance_to_go(s)
            gs = s.groundspeed_mps if getattr(s, "groundspeed_mps", None) else None
            speed = gs if gs and gs > 1.0 else self.plan.airframe.cruise_speed_mps
            eta = to_go / speed if to_go is not None else None
        return Progress(phase=self.monitor.phase, lat=s.lat, lon=s.lon, alt_rel_m=s.alt_rel_m,
                        groundspeed_mps=getattr(s, "groundspeed_mps", None), battery_pct=s.battery_pct,
                        distance_to_go_m=to_go, eta_s=eta, mission_seq=getattr(s, "mission_seq", None),
                        mode=getattr(s, "mode", None), sysid=self.sysid)

    def _distance_to_go(self, s) -> float | None:
        """Along the rest of the mission's waypoints, to the landing at the hub."""
        pts = [(it.lon, it.lat) for it in self.plan.mission[1:] if it.is_nav and (it.lat or it.lon)]
        seq = getattr(s, "mission_seq", None) or 1
        rest = [(it.lon, it.lat) for i, it in enumerate(self.plan.mission) if i >= seq and it.is_nav and (it.lat or it.lon)]
        if not rest:
            rest = pts[-1:]
        d = geodesic_distance_m(s.lon, s.lat, *rest[0])
        for a, b in zip(rest, rest[1:]):
            d += geodesic_distance_m(*a, *b)
        return d

    def _energy_summary(self, used: float | None) -> dict[str, Any]:
        """Predicted (as the verdict had it) against what the battery monitor says, whole and by phase."""
        from groundctl.core.calibration import PHASES
        from groundctl.core.energy import phase_energy, plan_energy

        e = self.prediction or plan_energy(self.plan, None, limits=False)
        pred = phase_energy(e)
        log_ = self.energy_log
        if self.monitor is not None and self.monitor.phase == "landed" and self.vehicle is not None:
            # the watch loop ends at the disarm, maybe before another BATTERY_STATUS: close the books now
            s = self.vehicle.state
            log_.update("landed", s.mission_seq, s.energy_consumed_wh)
        phases = {ph: {"predicted_wh": round(pred.get(ph, 0.0), 2),
                       "used_wh": round(log_.by_phase[ph], 2) if ph in log_.by_phase else None}
                  for ph in PHASES}
        ratio = used / e.needed_wh if used is not None and e.needed_wh > 0 else None
        return {"predicted_wh": round(e.needed_wh, 2), "used_wh": used, "ratio": round(ratio, 3) if ratio else None,
                "model_wh": round(e.model_wh, 2), "uncertainty_wh": round(e.uncertainty_wh, 2),
                "reserve_wh": round(e.reserve_wh, 2), "usable_wh": round(e.usable_wh, 2),
                "calibration": e.calibration.to_dict() if e.calibration else None,
                "complete": log_.done and log_.start_wh is not None, "phases": phases}

    def _report(self, outcome: str) -> DeliveryReport:
        rel = next((e for e in self.events if e.kind == "released"), None)
        take = next((e for e in self.events if e.kind == "taking_off"), None)
        land = next((e for e in self.events if e.kind == "landed"), None)
        r = DeliveryReport(outcome=outcome, events=list(self.events))
        mon = self.monitor
        if mon is not None:
            r.parcel = mon.parcel
            r.reason = mon.outcome_reason() if outcome == "returned_with_parcel" else None
            now = asyncio.get_running_loop().time()
            r.incidents = mon.incidents(now)
            s = mon.state
            r.end_lat = mon.end_lat if mon.end_lat is not None else (s.lat if mon.armed_seen else None)
            r.end_lon = mon.end_lon if mon.end_lon is not None else (s.lon if mon.armed_seen else None)
            r.end_mode = mon.end_mode or (s.mode if mon.armed_seen else None)
            d = mon.end_distance_m() if r.end_lat is not None else None
            r.end_distance_from_hub_m = None if d is None else round(d, 1)
        # a drop position is a claim that the parcel left the drone there: only for one that did
        if rel is not None and r.parcel in ("delivered", "misdelivered"):
            r.drop_lat, r.drop_lon, r.drop_time = rel.lat, rel.lon, rel.time
            if rel.lat is not None:
                r.drop_distance_m = round(geodesic_distance_m(rel.lon, rel.lat, self.plan.zone.lon, self.plan.zone.lat), 2)
        if take:
            r.takeoff_time = take.time
        if land:
            r.landed_time = land.time
        if take and land:
            r.flight_time_s = round((land.time - take.time).total_seconds(), 1)
        s = self.vehicle.state if self.vehicle else None
        if s is not None:
            e_now = getattr(s, "energy_consumed_wh", None)
            if e_now is not None and self._energy_start_wh is not None:
                r.energy_used_wh = round(e_now - self._energy_start_wh, 2)
            if s.battery_pct is not None and self._battery_start_pct is not None:
                r.battery_used_pct = round(self._battery_start_pct - s.battery_pct, 1)
        r.energy = self._energy_summary(r.energy_used_wh)
        return r
