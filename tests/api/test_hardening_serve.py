"""`groundctl serve` as a real process with its simulated fleet: however it ends, no simulator survives it.

A surviving simulator keeps its TCP port and a vehicle "flying" that no ground station watches; the next
serve would start a second one beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import OP_KEY, ROOT, free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for the process tree")


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            # the command name is in parentheses and may contain spaces: fields after the last ')'
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] not in "ZX"  # a zombie has exited; only its exit status remains


def start_serve(tmp: Path) -> tuple[subprocess.Popen, str, list[int]]:
    port = free_port()
    env = {**os.environ, "GROUNDCTL_OPERATOR_KEYS": OP_KEY, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "groundctl.faces.api", "--port", str(port), "--data", str(tmp),
                             "--log-level", "warning"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp / "serve.log").read_text()[-3000:]
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("serve did not come up: " + (tmp / "serve.log").read_text()[-3000:])
    sims = [p for p in children(proc.pid) if b"-m\x00sim" in Path(f"/proc/{p}/cmdline").read_bytes()]
    return proc, url, sims


def wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_no_simulator_outlives_serve(tmp_path, sig, request):
    # each case starts a whole serve (seconds of imports on a loaded machine): SIGINT, the terminal's
    # Ctrl-C, takes uvicorn's same orderly path as SIGTERM and runs with -m slow or GROUNDCTL_SLOW=1
    if sig == signal.SIGINT and "slow" not in (request.config.getoption("-m") or "") \
            and os.environ.get("GROUNDCTL_SLOW") != "1":
        pytest.skip("SIGINT case: run with -m slow or GROUNDCTL_SLOW=1")
    proc, url, sims = start_serve(tmp_path)
    try:
        fleet = httpx.get(url + "/api/v1/vehicles", headers={"X-API-Key": OP_KEY}, timeout=10).json()["items"]
        assert len(sims) == len(fleet) >= 2, f"expected a simulator per vehicle, found {sims}"
        proc.send_signal(sig)
        proc.wait(30)
        left = wait_gone(sims)
        assert not left, f"simulators {left} survived serve's {sig.name}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for p in sims:  # never leave one behind for the next test, whatever the result
            if alive(p):
                os.kill(p, signal.SIGKILL)
