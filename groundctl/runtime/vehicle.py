"""A vehicle session: one system id on a link; runs protocol machines and keeps its state current."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.core.mission import MissionItem
from groundctl.errors import CommandError, LinkError, TransferError
from groundctl.protocol import (CommandSender, MissionDownload, MissionUpload, ParamRead, ParamSet, VehicleState,
                                commands, verify)
from groundctl.protocol.command import Command
from groundctl.runtime.link import GCS_COMPID, GCS_SYSID, MavLink

log = logging.getLogger(__name__)
GCS = (GCS_SYSID, GCS_COMPID)

# Messages a delivery needs, and how often (Hz): asked for with SET_MESSAGE_INTERVAL
STREAMS = {
    mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 4, mavlink.MAVLINK_MSG_ID_SYS_STATUS: 2,
    mavlink.MAVLINK_MSG_ID_BATTERY_STATUS: 1, mavlink.MAVLINK_MSG_ID_VFR_HUD: 4,
    mavlink.MAVLINK_MSG_ID_MISSION_CURRENT: 2, mavlink.MAVLINK_MSG_ID_EKF_STATUS_REPORT: 1,
    mavlink.MAVLINK_MSG_ID_GPS_RAW_INT: 1, mavlink.MAVLINK_MSG_ID_ATTITUDE: 2,
    mavlink.MAVLINK_MSG_ID_FENCE_STATUS: 1, mavlink.MAVLINK_MSG_ID_HOME_POSITION: 0.5,
    mavlink.MAVLINK_MSG_ID_WIND: 1, mavlink.MAVLINK_MSG_ID_SERVO_OUTPUT_RAW: 2,
}


class Vehicle:
    """Talks to one vehicle. Everything it waits for has a timeout; nothing blocks the loop."""

    def __init__(self, link: MavLink, sysid: int, compid: int = 1) -> None:
        self.link = link
        self.sysid = sysid
        self.compid = compid
        self.state = VehicleState(sysid, compid)
        self._machines: list[Any] = []
        self._wake = asyncio.Event()
        self._listeners: list[Callable[[Any, Any, float], None]] = []
        self._unsub = link.subscribe(sysid, self._on_message)
        self._heartbeat = asyncio.Event()

    def close(self) -> None:
        self._unsub()

    def listen(self, fn: Callable[[Any, Any, float], None]) -> Callable[[], None]:
        """fn(msg, statustext_or_None, now) after the state has taken the message."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    def _on_message(self, msg, now: float) -> None:
        text = self.state.update(msg, now)
        if msg.get_type() == "HEARTBEAT":
            self._heartbeat.set()
        for m in self._machines:
            m.receive(msg, now)
            # answer in the same callback: a vehicle driving an upload waits on each reply, and a
            # round trip through the event loop per item made uploads ~1.5x slower than pymavlink's
            self._flush(m, now)
        if self._machines:
            self._wake.set()
        for fn in list(self._listeners):
            fn(msg, text, now)

    # -- machines -------------------------------------------------------------------------------
    def _flush(self, machine, now: float) -> None:
        for out in machine.poll(now):
            self.link.send(out, self.sysid)

    async def run(self, machine, on_progress: Callable[[Any], None] | None = None):
        """Drive one sans-IO machine to completion; returns its result or raises its error."""
        loop = asyncio.get_running_loop()
        self._machines.append(machine)
        try:
            self._flush(machine, loop.time())
            while not machine.done:
                deadline = machine.deadline()
                timeout = 0.5 if deadline is None else min(0.5, max(0.0, deadline - loop.time()))
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
                self._flush(machine, loop.time())
                for ev in machine.take_events():
                    if on_progress:
                        on_progress(ev)
            return machine.unwrap()
        finally:
            self._machines.remove(machine)

    async def command(self, cmd: Command, *, tries: int = 8) -> Any:
        # a try is lost one time in three at 20 % loss both ways: five in a row once per ~170 commands,
        # eight once per ~3,500; a vehicle that never answers costs 8 s instead of 5
        return await self.run(CommandSender(self.sysid, self.compid, cmd, max_tries=tries, gcs=GCS))

    # -- waiting --------------------------------------------------------------------------------
    async def wait_heartbeat(self, timeout_s: float = 15.0) -> None:
        self._heartbeat.clear()
        try:
            await asyncio.wait_for(self._heartbeat.wait(), timeout_s)
        except asyncio.TimeoutError:
            raise LinkError(f"no HEARTBEAT from system {self.sysid} on {self.link.url} within {timeout_s:g} s",
                            field="connection") from None

    async def wait_for(self, predicate: Callable[[VehicleState], bool], timeout_s: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not predicate(self.state):
            if loop.time() > end:
                raise LinkError(f"system {self.sysid}: timed out after {timeout_s:g} s waiting for {what}")
            await asyncio.sleep(0.1)

    async def request_streams(self, streams: dict[int, float] = STREAMS) -> None:
        """Ask for the telemetry a delivery needs. A refusal of one stream is not fatal (older firmware)."""
        for msg_id, hz in streams.items():
            try:
                await self.command(commands.set_message_interval(msg_id, 1.0 / hz), tries=3)
            except CommandError as e:
                log.info("stream %s: %s", msg_id, e)

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        """EKF has an absolute position (GLOBAL_POSITION_INT stays 0,0 until then) and a home."""
        await self.wait_for(lambda s: s.position_ready and s.has_position, timeout_s,
                            "an EKF position estimate (EKF_STATUS_REPORT absolute horizontal position)")

    # -- transfers --------------------------------------------------------------------------------
    async def upload_verified(self, mission_type: int, items: list[MissionItem], *, attempts: int = 3,
                              on_progress: Callable[[Any], None] | None = None) -> list[MissionItem]:
        """Upload, read back and compare item by item; retry the whole transfer if they differ.

        Each transfer carries its own overall deadline, scaled by the item count (MissionUpload,
        MissionDownload), so this returns or raises within `attempts` times their sum.
        on_progress gets TransferProgress for the upload (phase "upload") and the read-back ("download").
        """
        problems: list[str] = []
        for attempt in range(attempts):
            try:
                await self.run(MissionUpload(self.sysid, self.compid, mission_type, items, gcs=GCS), on_progress)
                got = await self.run(MissionDownload(self.sysid, self.compid, mission_type, gcs=GCS), on_progress)
            except TransferError as e:
                problems = [str(e)]
                log.warning("transfer type %d attempt %d: %s", mission_type, attempt + 1, e)
                continue
            problems = verify(items, got, mission_type)
            if not problems:
                return got
            log.warning("read-back of type %d differs: %s", mission_type, problems)
        kind = {0: "mission", 1: "fence", 2: "rally"}.get(mission_type, str(mission_type))
        raise TransferError(f"{kind} upload not verified after {attempts} attempts: {'; '.join(problems[:5])}")

    async def download(self, mission_type: int, *,
                       on_progress: Callable[[Any], None] | None = None) -> list[MissionItem]:
        """The vehicle's list of one type (for a mission, item 0 is home)."""
        return await self.run(MissionDownload(self.sysid, self.compid, mission_type, gcs=GCS), on_progress)

    async def read_params(self, names: list[str]) -> dict[str, float]:
        """Read what exists; names the vehicle does not know are left out (one slow retry round)."""
        m = ParamRead(self.sysid, self.compid, names, max_tries=10)  # survives heavy packet loss
        try:
            res = await self.run(m)
        except TransferError:
            res = m.values
        return {n: pv.value for n, pv in res.items()}

    async def set_params(self, values: dict[str, float]) -> dict[str, float]:
        # as the read: at 20 % loss both ways one try in three is lost, five in a row happen once per
        # ~170 names, and a flight writes a dozen
        return await self.run(ParamSet(self.sysid, self.compid, values, max_tries=10))
