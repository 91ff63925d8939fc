"""The steps before a delivery flight leaves the ground, each checked against what the vehicle says.

Parameters are written and read back, a reboot they need is seen in the boot counter, the gripper's
grab in its own words, the takeoff in the vehicle climbing: on a lossy link any one request or reply
can vanish, and a step taken on trust is how a flight starts without its parcel or never starts.
A mixin of runtime.fly.DeliveryFlight (uses its monitor, texts, _stage and ready_timeout_s).
"""

from __future__ import annotations

import asyncio
import logging

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from groundctl.errors import CommandError, GroundctlError, TransferError
from groundctl.protocol import commands
from groundctl.protocol.params import same_value
from groundctl.runtime.vehicle import STREAMS, Vehicle

log = logging.getLogger(__name__)

# ArduPilot reads these at boot only (AP_Gripper, AP_Winch): a change needs a reboot to take effect
REBOOT_PARAMS = {"GRIP_ENABLE", "GRIP_TYPE", "WINCH_TYPE", "SIM_GRPS_ENABLE", "SIM_GRPS_PIN"}
# SITL-only helpers: absent on a real autopilot, which is fine
OPTIONAL_PREFIXES = ("SIM_",)
# Groups that only appear once their enable parameter is set and the vehicle rebooted
ENABLED_BY = {"GRIP_": "GRIP_ENABLE", "WINCH_": "WINCH_TYPE"}

BOOT_COUNT = "STAT_BOOTCNT"  # AP_Stats: one more at every boot of any ArduPilot vehicle
# SYSTEM_TIME pairs the autopilot's time_boot_ms with its UTC: events are dated in vehicle time
FLIGHT_STREAMS = {**STREAMS, mavlink.MAVLINK_MSG_ID_SYSTEM_TIME: 1}


class BeforeTakeoff:
    async def _start_mission(self, v: Vehicle, attempts: int = 3) -> None:
        """MISSION_START, and see the vehicle leave the ground before the watch takes over.

        Copter disarms on the ground after DISARM_DELAY (10 s) without a takeoff (Copter::auto_disarm_check).
        A start that comes later than that (its ack lost and the command resent on a bad link, or a
        simulator running faster than real time) finds the vehicle disarmed and leaves it sitting in AUTO
        on the pad: nothing would ever fly or land. The parcel is still at the hub, so arm and start again,
        a few times, then fail saying why.
        """
        loop = asyncio.get_running_loop()
        for attempt in range(1, attempts + 1):
            self._stage("starting the mission" + (f" (attempt {attempt} of {attempts})" if attempt > 1 else ""))
            # MISSION_START from GUIDED-armed starts AUTO without needing AUTO_OPTIONS for ground starts
            await v.command(commands.mission_start())
            if await self._leaves_ground(v, acked=loop.time()):
                return
            if attempt == attempts:
                raise CommandError(f"the vehicle disarmed on the ground {attempts} times before taking off "
                                   "(DISARM_DELAY ran out): the parcel is still at the hub", field="takeoff")
            self._stage("disarmed on the ground before taking off (DISARM_DELAY): arming again")
            self.monitor.expect_mode("GUIDED")
            await v.command(commands.set_mode("GUIDED"))
            await self._arm(v)

    async def _leaves_ground(self, v: Vehicle, acked: float) -> bool:
        """False if a HEARTBEAT sent after the start says disarmed before the vehicle climbed.

        Only heartbeats received after the start's ack count: the link keeps order, so those were sent
        after the vehicle armed and started. Up to 30 s of vehicle time (60 s wall if its clock stops);
        after that the watch judges the flight as it does any other.
        """
        s, loop = v.state, asyncio.get_running_loop()
        start_ms, wall_end = s.time_boot_ms, loop.time() + 60.0
        while True:
            if s.alt_rel_m is not None and s.alt_rel_m > 1.0:
                return True
            if s.last_heartbeat is not None and s.last_heartbeat > acked and not s.armed:
                return False
            if ((s.time_boot_ms is not None and start_ms is not None and s.time_boot_ms - start_ms > 30_000)
                    or loop.time() > wall_end):
                return True
            await asyncio.sleep(0.05)

    async def _grab(self, v: Vehicle, asks: int = 6) -> None:
        """Close the gripper and wait until the autopilot says the load is grabbed.

        AP_Gripper_Servo says "Gripper load grabbed" once, 0.5 s after the grab, in a STATUSTEXT that a
        lossy link drops like any other message. Asked again once grabbed it says it again (and ignores the
        ask while still closing), so the grab is repeated until the words arrive. Each ask waits a second of
        the vehicle's time (time_boot_ms) for the servo, and a moment of ours for the text to come, so
        neither a loaded ground station nor a simulator faster than real time gives up early; six asks
        lost in a row at 20 % loss happen once in ~15,000 flights. Taking off before the gripper has
        closed leaves the parcel behind.
        """
        self.texts.clear()
        loop = asyncio.get_running_loop()

        def grabbed() -> bool:
            return any("load grabbed" in t.lower() for t in self.texts)

        for _ in range(asks):
            try:
                await v.command(commands.gripper(release=False))
            except CommandError as e:
                raise CommandError(f"gripper did not grab: {e}") from None
            t_ms, t_wall = v.state.time_boot_ms, loop.time()
            while not grabbed():
                now_ms, waited = v.state.time_boot_ms, loop.time() - t_wall
                vehicle_s = (now_ms - t_ms) / 1000.0 if now_ms is not None and t_ms is not None else waited
                if (vehicle_s >= 1.0 and waited >= 0.3) or waited > 10.0:  # 10 s: its clock stopped
                    break
                await asyncio.sleep(0.05)
            if grabbed():
                return
        raise CommandError(f"gripper acknowledged the grab {asks} times but never reported 'Gripper load "
                           "grabbed': check GRIP_* parameters and the servo output", field="gripper")

    def _check_battery(self, v: Vehicle) -> None:
        """Refuse to start a flight the battery on board cannot finish with its reserve."""
        mon, s = self.monitor, v.state
        have = mon.remaining_wh()
        if have is None:
            return  # no battery telemetry: the preflight energy check stands alone
        need = mon.needed_wh() + mon.spec.reserve_wh
        if have < need:
            raise GroundctlError(
                f"battery holds {have:.0f} Wh usable ({s.battery_pct:.0f} %), the flight needs {need:.0f} Wh "
                f"including the reserve: charge or swap the battery", field="battery")

    async def _arm(self, v: Vehicle) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + 60.0
        while True:
            try:
                await v.command(commands.arm(), tries=3)
                return
            except CommandError as e:
                # pre-arm checks settle a few seconds after the EKF is ready: try again, then give up
                if loop.time() > end:
                    said = "; ".join(t for t in self.texts if "arm" in t.lower())[-300:]
                    raise CommandError(f"vehicle refused to arm: {e}" + (f" (it said: {said})" if said else "")) from None
                await asyncio.sleep(2.0)

    async def _apply_params(self, v: Vehicle, wanted: dict[str, float]) -> None:
        for round_ in range(4):
            current = await v.read_params(list(wanted))
            changed = {n: val for n, val in wanted.items() if n in current and not same_value(val, current[n])}
            missing = [n for n in wanted if n not in current]
            if changed:
                self._stage(f"setting {', '.join(sorted(changed))}")
                await v.set_params(changed)
            need_reboot = [n for n in changed if n in REBOOT_PARAMS]
            waiting_on_enable = [n for n in missing if any(n.startswith(p) and ENABLED_BY[p] in changed for p in ENABLED_BY)]
            if need_reboot or waiting_on_enable:
                await self._reboot(v, need_reboot)
                continue
            hard_missing = [n for n in missing if not n.startswith(OPTIONAL_PREFIXES)]
            if hard_missing:
                raise TransferError(f"vehicle has no parameter {', '.join(hard_missing)}", field="params")
            return
        raise TransferError("parameters still changing after 4 reboots", field="params")

    async def _reboot(self, v: Vehicle, why: list[str]) -> None:
        """Reboot, and see that it happened: ArduPilot counts its boots in STAT_BOOTCNT (AP_Stats::init).

        The request and its ack can both be lost; a reboot that did not happen leaves a parameter such as
        GRIP_ENABLE written but without effect (no gripper backend: grabs acknowledged and ignored). The
        vehicle's clock is no proof: one rebooted seconds after it came up soon reads as late as before.
        """
        self._stage(f"rebooting the autopilot so {', '.join(why) or 'new parameters'} take effect")
        boots = (await v.read_params([BOOT_COUNT])).get(BOOT_COUNT)
        for attempt in range(1, 4):
            try:
                await v.command(commands.reboot(), tries=2)
            except CommandError:
                pass  # the ack can be lost as the link closes
            await asyncio.sleep(2.0)
            await v.wait_heartbeat(60.0)
            await v.request_streams(FLIGHT_STREAMS)  # a rebooted autopilot streams only what it is asked for
            if boots is None:
                break  # no boot counter on this autopilot: taken on trust, as it has to be
            now = (await v.read_params([BOOT_COUNT])).get(BOOT_COUNT)
            if now is not None and now != boots:
                break
            if attempt == 3:
                raise CommandError("the autopilot did not reboot after 3 requests (STAT_BOOTCNT stayed at "
                                   f"{boots:.0f}): new parameters would not take effect", field="reboot")
            self._stage("the autopilot did not reboot: asking again")
        await v.wait_ready(self.ready_timeout_s)
