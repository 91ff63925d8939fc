"""Start ArduPilot SITL (arducopter) at a hub, the way sim_vehicle.py does, for `fly --sitl` and tests.

The binary comes from ARDUPILOT_SITL (groundctl never builds ArduPilot). The copter defaults file is
found next to it in an ArduPilot tree (Tools/autotest/default_params/copter.parm) or given by
ARDUPILOT_SITL_DEFAULTS. Each instance gets its own working directory, because eeprom.bin there
keeps parameters and missions between runs; `-w` wipes it at start.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from groundctl.errors import GroundctlError

log = logging.getLogger(__name__)


class SitlUnavailable(GroundctlError):
    title = "ArduPilot SITL unavailable"


def sitl_binary() -> Path:
    path = os.environ.get("ARDUPILOT_SITL")
    if not path:
        raise SitlUnavailable("ARDUPILOT_SITL is not set: point it at an arducopter SITL binary "
                              "(build/sitl/bin/arducopter from ArduPilot's `./waf configure --board sitl && ./waf copter`)",
                              field="ARDUPILOT_SITL")
    p = Path(path)
    if not p.is_file() or not os.access(p, os.X_OK):
        raise SitlUnavailable(f"{path} is not an executable file", field="ARDUPILOT_SITL")
    return p


def defaults_file(binary: Path) -> Path | None:
    env = os.environ.get("ARDUPILOT_SITL_DEFAULTS")
    if env:
        return Path(env)
    for root in binary.resolve().parents:
        cand = root / "Tools" / "autotest" / "default_params" / "copter.parm"
        if cand.is_file():
            return cand
    return None


@dataclass
class SitlProcess:
    proc: subprocess.Popen
    workdir: Path
    instance: int
    url: str
    log_path: Path
    model: str = "+"  # the SITL physics model it flies

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> "SitlProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _listening(port: int) -> bool:
    """Is something listening on the port? Read from /proc, not by connecting: the first SITL port
    serves a single client, and a probe connection would take that slot."""
    hexport = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            parts = ln.split()
            if parts[1].endswith(hexport) and parts[3] == "0A":  # 0A = LISTEN
                return True
    return False


def free_instance(start: int = 0) -> int:
    """An instance number whose ports (5760..5763 + 10 x instance) are all free."""
    for i in range(start, start + 50):
        if all(_port_free(5760 + 10 * i + k) for k in range(4)) and _port_free(5501 + 10 * i):
            return i
    raise SitlUnavailable("no free SITL instance ports")


SITL_PACK_V = 12.6  # SIM_BATT_VOLTAGE default: SITL's simulated pack


@dataclass(frozen=True)
class SitlFrame:
    """A multicopter layout as ArduPilot SITL flies it: the physics model (`--model`, a name from
    supported_frames in libraries/SITL/SIM_Frame.cpp), the autopilot's FRAME_CLASS / FRAME_TYPE
    (AP_Motors_Class.h) that must match it, and the defaults files sim_vehicle.py loads for that frame
    after copter.parm (Tools/autotest/pysim/vehicleinfo.py)."""

    name: str
    model: str
    frame_class: int
    frame_type: int
    parm_files: tuple[str, ...]


# by rotor count; X layouts where SITL has one (sim_vehicle.py -f X / hexax; its octa is plus only)
SITL_FRAMES = {
    4: SitlFrame("quad X", "x", 1, 1, ("copter-X.parm",)),
    6: SitlFrame("hexa X", "hexax", 2, 1, ("copter-hexa.parm", "copter-X.parm")),
    8: SitlFrame("octa +", "octa", 3, 0, ("copter-octa.parm",)),
}


def sitl_frame(airframe) -> SitlFrame:
    """The SITL frame of an airframe, from its rotor count."""
    f = SITL_FRAMES.get(airframe.rotor_count)
    if f is None:
        raise SitlUnavailable(f"airframe {airframe.name!r} has {airframe.rotor_count} rotors: groundctl starts SITL "
                              f"for {', '.join(str(n) for n in SITL_FRAMES)} rotors only", field="airframe.rotor_count")
    return f


def _frame_of(params: dict[str, float] | None) -> SitlFrame | None:
    if not params or "FRAME_CLASS" not in params:
        return None
    key = (int(params["FRAME_CLASS"]), int(params.get("FRAME_TYPE", 0)))
    f = next((f for f in SITL_FRAMES.values() if (f.frame_class, f.frame_type) == key), None)
    if f is None:
        raise SitlUnavailable(f"no SITL model for FRAME_CLASS {key[0]} FRAME_TYPE {key[1]}", field="FRAME_CLASS")
    return f


def delivery_params(plan) -> dict[str, float]:
    """SITL parameters so the simulated vehicle matches the airframe the plan was checked for.

    The frame: FRAME_CLASS / FRAME_TYPE of the airframe's rotor count (start_sitl picks the matching
    physics model from them), so a hexa the verdict chose flies as a hexa, not as SITL's default quad.
    ArduPilot's battery monitor reports consumed mAh against BATT_CAPACITY (default 3300 mAh): left
    alone, the simulated pack is a fraction of the airframe's and the flight meets a low-battery
    return it was never planned for. Size it to the airframe's energy at SITL's pack voltage.
    The drop devices need nothing SITL-specific beyond the gripper simulation (SIM_GRPS_*, set by the
    runtime with the plan's parameters): SITL has no winch model, and AP_Winch_PWM reports the line
    it commanded.
    """
    f = sitl_frame(plan.airframe)
    return {"FRAME_CLASS": f.frame_class, "FRAME_TYPE": f.frame_type,
            "BATT_CAPACITY": round(plan.airframe.battery_wh / SITL_PACK_V * 1000)}


def start_sitl(lat: float, lon: float, alt_amsl_m: float, heading_deg: float = 0.0, *, speedup: float = 1.0,
               instance: int | None = None, workdir: str | Path | None = None, wipe: bool = True,
               extra_args: list[str] | None = None, params: dict[str, float] | None = None,
               model: str | None = None) -> SitlProcess:
    """Start arducopter; returns once it listens. Connect to `.url` (the first port holds the boot
    until a client connects, and serves one client). The physics model follows FRAME_CLASS /
    FRAME_TYPE in `params` (see delivery_params) unless `model` names one; with neither, "+"."""
    binary = sitl_binary()
    inst = free_instance() if instance is None else instance
    wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"groundctl-sitl{inst}-"))
    wd.mkdir(parents=True, exist_ok=True)
    frame = _frame_of(params)
    model = model or (frame.model if frame else "+")
    args = [str(binary), "--model", model, "--speedup", str(speedup), "-I", str(inst),
            "--home", f"{lat},{lon},{alt_amsl_m},{heading_deg}"]
    defaults = [str(d)] if (d := defaults_file(binary)) is not None else []
    if defaults and frame is not None:
        defaults += [str(Path(defaults[0]).parent / n) for n in frame.parm_files
                     if (Path(defaults[0]).parent / n).is_file()]
    if params:
        extra = wd / "groundctl.parm"
        extra.write_text("".join(f"{k} {v:g}\n" for k, v in params.items()))
        defaults.append(str(extra))  # later files override earlier ones
    if defaults:
        args += ["--defaults", ",".join(defaults)]
    if wipe:
        args.append("-w")
    args += extra_args or []
    log.info("starting ArduPilot SITL: %s", " ".join(args))
    log_path = wd / "sitl.log"
    logf = open(log_path, "wb")
    proc = subprocess.Popen(args, cwd=wd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    port = 5760 + 10 * inst
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SitlUnavailable(f"arducopter exited with {proc.returncode}: {log_path.read_text(errors='replace')[-500:]}")
        if _listening(port):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        raise SitlUnavailable(f"arducopter did not listen on {port} within 30 s")
    return SitlProcess(proc, wd, inst, f"tcp:127.0.0.1:{port}", log_path, model)


def cleanup(p: SitlProcess) -> None:
    p.stop()
    shutil.rmtree(p.workdir, ignore_errors=True)
