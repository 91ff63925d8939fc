"""Sans-IO protocol machines: feed decoded messages and the time, get messages to send and events.

Nothing here owns a socket, sleeps or reads a clock: every method takes `now`, monotonic seconds.
Messages are pymavlink `pymavlink.dialects.v20.ardupilotmega` message objects, in and out; the
runtime encodes outgoing ones with its own source sysid/compid. Incoming messages must carry their
header (as pymavlink's parser gives them): machines ignore other systems by `get_srcSystem()`.

Request/response machines (MissionUpload, MissionDownload, MissionClear, CommandSender, ParamSet,
ParamRead) share one shape (see `_base.Machine`):

    m.receive(msg, now) -> None        every decoded message from the link (irrelevant ones ignored)
    m.poll(now) -> list[message]       run timers; returns (and forgets) everything to send.
                                       The first poll sends the opening message.
    m.deadline() -> float | None       when poll next has work; None once done
    m.take_events() -> list            progress: TransferProgress, CommandProgress, ParamValue
    m.done, m.ok, m.result, m.error    error is a TransferError / CommandError (groundctl.errors)
    m.unwrap()                         result, or raise error

Runtime sketch (asyncio side, one machine at a time per vehicle and mission type)::

    from groundctl.protocol import MissionUpload, MissionDownload, verify, CommandSender, commands

    async def run(machine, link):                 # link: recv queue + send(msg)
        for out in machine.poll(loop.time()):
            link.send(out)
        while not machine.done:
            timeout = max(0.0, (machine.deadline() or loop.time() + 1) - loop.time())
            try:
                msg = await asyncio.wait_for(link.queue.get(), timeout)
                machine.receive(msg, loop.time())
            except asyncio.TimeoutError:
                pass
            for out in machine.poll(loop.time()):
                link.send(out)
            for ev in machine.take_events():
                report(ev)
        return machine.unwrap()

    await run(MissionUpload(sysid, 1, mavlink.MAV_MISSION_TYPE_MISSION, plan.mission), link)
    got = await run(MissionDownload(sysid, 1, mavlink.MAV_MISSION_TYPE_MISSION), link)
    if problems := verify(plan.mission, got, mavlink.MAV_MISSION_TYPE_MISSION):
        raise TransferError("; ".join(problems))
    await run(ParamSet(sysid, 1, plan.params), link)
    await run(CommandSender(sysid, 1, commands.set_mode("GUIDED")), link)
    await run(CommandSender(sysid, 1, commands.arm()), link)
    await run(CommandSender(sysid, 1, commands.mission_start()), link)

Streams (no end):

    state = VehicleState(sysid, 1)
    text = state.update(msg, now)      # -> StatusText when a (chunked) STATUSTEXT completes
    state.link_ok(now, timeout_s=3)

    monitor = FlightMonitor(FlightSpec.from_plan(plan, wh_per_m=..., reserve_wh=...), state,
                            seen=stored_events, clock_anchor=(loop.time(), utcnow()))
    monitor.observe(msg, text, now)    # after state.update; or monitor.feed(msg, now) to do both
    monitor.poll(now)                  # ~1 Hz: link loss
    monitor.take_events()              # list[DeliveryEvent], dated in vehicle time (time_boot_ms)
    monitor.take_reactions()           # [("return"|"rtl"|"cancel", reason)]: the runtime acts
    monitor.return_entry()             # the mission item to jump to for home along the route
    monitor.expect_mode("RTL")         # before commanding a mode: not an unplanned mode change
    monitor.abort(now, "operator")     # operator abort -> "aborted" event + reaction
    monitor.outcome(lost=False)        # events.OUTCOMES; monitor.incidents(now): each incident once

Machines are not thread-safe and not reusable: make a new one per transfer/command.
"""

from groundctl.protocol import command as commands
from groundctl.protocol.command import COPTER_MODE_NAMES, COPTER_MODES, Command, CommandProgress, CommandSender
from groundctl.protocol.mission import (MissionClear, MissionDownload, MissionUpload, TransferProgress,
                                        item_to_message, message_to_item, verify)
from groundctl.protocol.monitor import FlightMonitor, FlightSpec
from groundctl.protocol.params import ParamRead, ParamSet, ParamValue
from groundctl.protocol.telemetry import StatusText, VehicleState

__all__ = [
    "COPTER_MODES", "COPTER_MODE_NAMES", "Command", "CommandProgress", "CommandSender", "commands",
    "MissionClear", "MissionDownload", "MissionUpload", "TransferProgress", "item_to_message", "message_to_item",
    "verify", "FlightMonitor", "FlightSpec", "ParamRead", "ParamSet", "ParamValue", "StatusText", "VehicleState",
]
