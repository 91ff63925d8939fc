"""`groundctl mission upload FILE` and `groundctl mission download -o FILE`: a QGroundControl .plan
(mission, fence, rally), an older QGC .mission, or a QGC WPL 110 .waypoints file (a mission, or a
fence or rally list as Mission Planner saves them) to and from a vehicle, each transfer verified by
reading it back. Exit 0 verified, 1 not (link, refusal, read-back differs), 2 bad input."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from groundctl.errors import GroundctlError, InputError, LinkError

TYPES = ("mission", "fence", "rally")
SUFFIXES = (".plan", ".waypoints")


def _exit_code(e: GroundctlError) -> int:
    return 2 if isinstance(e, InputError) else 1


def _progress_bar(quiet: bool):
    """A rich progress bar on stderr (stdout stays for --json): one task per list and direction."""
    if quiet:
        return None, None
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=False)
    tasks: dict[tuple[int, str], Any] = {}

    def on_progress(p) -> None:
        key = (p.mission_type, p.phase)
        if key not in tasks:
            verb = "upload" if p.phase == "upload" else "read back"
            tasks[key] = bar.add_task(f"{TYPES[p.mission_type]:7} {verb}", total=p.total)
        desc = None
        if p.restarts:
            desc = f"{TYPES[p.mission_type]:7} upload (restarted {p.restarts}x: the vehicle gave up on the link)"
        bar.update(tasks[key], completed=p.done, total=p.total, **({"description": desc} if desc else {}))
    return bar, on_progress


async def _first_sysid(link, timeout_s: float = 30.0) -> int:
    from pymavlink.dialects.v20 import ardupilotmega as mavlink

    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def hb(msg, now):
        if msg.get_type() == "HEARTBEAT" and msg.type != mavlink.MAV_TYPE_GCS and not fut.done():
            fut.set_result(msg.get_srcSystem())
    unsub = link.subscribe(None, hb)
    try:
        return await asyncio.wait_for(fut, timeout_s)
    except asyncio.TimeoutError:
        raise LinkError(f"no vehicle HEARTBEAT on {link.url} within {timeout_s:g} s", field="connect") from None
    finally:
        unsub()


async def _with_vehicle(url: str, sysid: Optional[int], fn: Callable):
    from groundctl.runtime.link import MavLink
    from groundctl.runtime.vehicle import Vehicle

    link = MavLink(url)
    await link.open(timeout_s=30.0)
    try:
        sid = sysid or await _first_sysid(link)
        v = Vehicle(link, sid)
        try:
            await v.wait_heartbeat(30.0)
            return sid, await fn(v)
        finally:
            v.close()
    finally:
        await link.close()


def _check_url(url: str) -> None:
    from groundctl.runtime.link import Endpoint

    try:
        Endpoint.parse(url)
    except GroundctlError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad URL, said as such
        raise InputError(f"{url!r} is not a MAVLink URL ({e}); use tcp:HOST:PORT, udpin:HOST:PORT or "
                         f"udpout:HOST:PORT", field="connect") from None


def _finish(doc: dict, code: int, as_json: bool, console: Console) -> None:
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        for t in doc.get("transfers", []):
            console.print(f"{t['type']:7} {t['items']:4d} items  {t['seconds']:.1f} s  {t['status']}")
        if code == 0:
            console.print(f"[green]verified[/]: {doc.get('file')} {doc.get('what')}")
        elif doc.get("error"):
            Console(stderr=True, soft_wrap=True).print(f"error: {doc['error']}", markup=False, highlight=False)
    raise typer.Exit(code)


def upload_cmd(file: Path, connect: str, sysid: Optional[int], as_json: bool, terrain_frame: bool = False) -> None:
    from groundctl.core.planfiles import read_plan
    from groundctl.core.textfile import read_text
    from groundctl.faces.cli_check import print_error

    console = Console()
    try:
        _check_url(connect)
        text = read_text(file)
        plan = read_plan(text, str(file), terrain="frame" if terrain_frame else "refuse")
    except GroundctlError as e:
        print_error(e, as_json)
        raise typer.Exit(2)
    lists = (plan.mission, plan.fence, plan.rally)
    # a .plan is the vehicle's whole state, so its empty fence or rally clears the vehicle's (as QGC does);
    # a .waypoints file holds one list and leaves the others alone
    types = list(plan.kinds)
    if not as_json:
        err = Console(stderr=True, soft_wrap=True)
        for w in plan.warnings:
            err.print(f"warning: {file}: {w}", markup=False, highlight=False)
    bar, on_progress = _progress_bar(as_json)
    transfers: list[dict] = []

    async def go(v):
        for mt in types:
            t0 = time.perf_counter()
            await v.upload_verified(mt, lists[mt], on_progress=on_progress)
            transfers.append({"type": TYPES[mt], "items": len(lists[mt]), "seconds": round(time.perf_counter() - t0, 2),
                              "status": "verified"})

    doc: dict = {"file": str(file), "connect": connect, "what": "uploaded and read back", "transfers": transfers,
                 "warnings": plan.warnings}
    try:
        if bar is not None:
            bar.start()
        try:
            sid, _ = asyncio.run(_with_vehicle(connect, sysid, go))
        finally:
            if bar is not None:
                bar.stop()
    except GroundctlError as e:
        doc.update(verified=False, sysid=sysid, error=str(e), kind=type(e).__name__, **e.to_dict())
        _finish(doc, _exit_code(e), as_json, console)
        return
    doc.update(verified=True, sysid=sid)
    _finish(doc, 0, as_json, console)


def download_cmd(out: Path, connect: str, sysid: Optional[int], as_json: bool) -> None:
    from groundctl.core.mission import MissionItem
    from groundctl.core.planfiles import plan_dumps, read_plan, to_qgc_plan, to_wpl, to_wpl_fence, to_wpl_rally
    from groundctl.faces.cli_check import print_error
    from groundctl.protocol import verify

    console = Console()
    try:
        _check_url(connect)
        if out.suffix not in SUFFIXES:
            raise InputError(f"must end in .plan (mission, fence, rally), .waypoints (mission), .fence.waypoints "
                             f"or .rally.waypoints, not {out.suffix or 'no suffix'!r}", field=str(out))
        if out.is_dir():
            raise InputError("is a directory, not a file", field=str(out))
        if not out.parent.is_dir():
            raise InputError(f"cannot write it: directory {out.parent} does not exist", field=str(out))
    except GroundctlError as e:
        print_error(e, as_json)
        raise typer.Exit(2)
    # name.fence.waypoints / name.rally.waypoints: that list alone, as Mission Planner loads it
    single = {".fence": 1, ".rally": 2}.get(Path(out.stem).suffix, 0)
    types = [0, 1, 2] if out.suffix == ".plan" else ([0, single] if single else [0])
    bar, on_progress = _progress_bar(as_json)
    transfers: list[dict] = []

    async def go(v):
        got: dict[int, list[MissionItem]] = {}
        for mt in types:
            t0 = time.perf_counter()
            got[mt] = await v.download(mt, on_progress=on_progress)
            transfers.append({"type": TYPES[mt], "items": len(got[mt]), "seconds": round(time.perf_counter() - t0, 2),
                              "status": "read"})
        if not got[0]:
            # no mission: the file still needs a home position, which the vehicle reports apart
            s = v.state
            home = (s.home_lat, s.home_lon, s.home_alt_amsl_m) if getattr(s, "home_lat", None) is not None else (0, 0, 0)
            got[0] = [MissionItem(16, 0, lat=home[0], lon=home[1], alt=home[2])]
        return got

    doc: dict = {"file": str(out), "connect": connect, "what": "downloaded and read back from the file",
                 "transfers": transfers}
    try:
        if bar is not None:
            bar.start()
        try:
            sid, got = asyncio.run(_with_vehicle(connect, sysid, go))
        finally:
            if bar is not None:
                bar.stop()
        if out.suffix == ".plan":
            text = plan_dumps(to_qgc_plan(got[0], got.get(1, []), got.get(2, [])))
        elif single == 1:
            text = to_wpl_fence(got[1], got[0][0])
        elif single == 2:
            text = to_wpl_rally(got[2], got[0][0])
        else:
            text = to_wpl(got[0])
        try:
            out.write_text(text)
        except OSError as e:
            raise InputError(f"cannot write it: {e.strerror or e}", field=str(out)) from None
    except GroundctlError as e:
        doc.update(verified=False, sysid=sysid, error=str(e), kind=type(e).__name__, **e.to_dict())
        _finish(doc, _exit_code(e), as_json, console)
        return
    # the file is checked, not just written: read back, it must hold what the vehicle holds
    try:
        b = read_plan(out.read_text(), str(out))
        back = (b.mission, b.fence, b.rally)
        # a fence or rally file holds that list alone (the mission was read only for its home)
        problems = [p for mt in ([single] if single else types) for p in verify(got[mt], back[mt], mt)]
    except (GroundctlError, OSError) as e:
        problems = [f"the written file does not read back: {e}"]
    doc.update(sysid=sid, verified=not problems, problems=problems)
    if problems:
        doc["error"] = f"{out} does not hold what the vehicle holds: {'; '.join(problems[:5])}"
    _finish(doc, 0 if not problems else 1, as_json, console)


def register(app: typer.Typer) -> None:
    mission = typer.Typer(no_args_is_help=True, help="Mission, fence and rally to and from a vehicle, verified.")

    @mission.command("upload")
    def upload(
        file: Path = typer.Argument(..., help="QGroundControl .plan (mission, fence, rally) or QGC WPL 110 .waypoints"),
        connect: str = typer.Option(..., "--connect", help="MAVLink URL: tcp:HOST:PORT, udpin:HOST:PORT, udpout:HOST:PORT"),
        sysid: Optional[int] = typer.Option(None, "--sysid", min=1, max=255,
                                            help="vehicle system id (default: the first that sends a heartbeat)"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
        terrain_frame: bool = typer.Option(
            False, "--terrain-frame",
            help="a QGC item 'calculated above terrain' that QGC never turned into AMSL: fly it at that height "
                 "above ArduPilot's terrain data (frame 10) instead of refusing the file"),
    ) -> None:
        """Upload a plan file and read every list back: exit 0 verified, 1 not, 2 bad input."""
        upload_cmd(file, connect, sysid, as_json, terrain_frame)

    @mission.command("download")
    def download(
        connect: str = typer.Option(..., "--connect", help="MAVLink URL: tcp:HOST:PORT, udpin:HOST:PORT, udpout:HOST:PORT"),
        out: Path = typer.Option(..., "-o", "--out", help="file to write: .plan (mission, fence, rally), .waypoints "
                                                          "(mission), NAME.fence.waypoints or NAME.rally.waypoints "
                                                          "(as Mission Planner loads them)"),
        sysid: Optional[int] = typer.Option(None, "--sysid", min=1, max=255,
                                            help="vehicle system id (default: the first that sends a heartbeat)"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Read the vehicle's lists into a plan file, then read the file back and compare."""
        download_cmd(out, connect, sysid, as_json)

    app.add_typer(mission, name="mission")
