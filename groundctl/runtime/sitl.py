"""Start ArduPilot SITL (arducopter) at a hub, the way sim_vehicle.py does, for `fly --sitl` and tests.

The binary comes from ARDUPILOT_SITL (groundctl never builds ArduPilot). The copter defaults file is
found next to it in an ArduPilot tree (Tools/autotest/default_params/copter.parm) or given by
ARDUPILOT_SITL_DEFAULTS. Each instance gets its own working directory, because eeprom.bin there
keeps parameters and missions between runs; `-w` wipes it at start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from groundctl.errors import GroundctlError


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


def delivery_params(plan) -> dict[str, float]:
    """SITL parameters so the simulated vehicle matches the airframe the plan was checked for.

    ArduPilot's battery monitor reports consumed mAh against BATT_CAPACITY (default 3300 mAh): left
    alone, the simulated pack is a fraction of the airframe's and the flight meets a low-battery
    return it was never planned for. Size it to the airframe's energy at SITL's pack voltage.
    """
    return {"BATT_CAPACITY": round(plan.airframe.battery_wh / SITL_PACK_V * 1000)}


def start_sitl(lat: float, lon: float, alt_amsl_m: float, heading_deg: float = 0.0, *, speedup: float = 1.0,
               instance: int | None = None, workdir: str | Path | None = None, wipe: bool = True,
               extra_args: list[str] | None = None, params: dict[str, float] | None = None) -> SitlProcess:
    """Start arducopter; returns once it listens. Connect to `.url` (the first port holds the boot
    until a client connects, and serves one client)."""
    binary = sitl_binary()
    inst = free_instance() if instance is None else instance
    wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"groundctl-sitl{inst}-"))
    wd.mkdir(parents=True, exist_ok=True)
    args = [str(binary), "--model", "+", "--speedup", str(speedup), "-I", str(inst),
            "--home", f"{lat},{lon},{alt_amsl_m},{heading_deg}"]
    defaults = [str(d)] if (d := defaults_file(binary)) is not None else []
    if params:
        extra = wd / "groundctl.parm"
        extra.write_text("".join(f"{k} {v:g}\n" for k, v in params.items()))
        defaults.append(str(extra))  # later files override earlier ones
    if defaults:
        args += ["--defaults", ",".join(defaults)]
    if wipe:
        args.append("-w")
    args += extra_args or []
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
    return SitlProcess(proc, wd, inst, f"tcp:127.0.0.1:{port}", log_path)


def cleanup(p: SitlProcess) -> None:
    p.stop()
    shutil.rmtree(p.workdir, ignore_errors=True)
