"""Start the simulator as a subprocess and learn its ports.

    from sim.launch import start_sim

    with start_sim(["--speedup", "20", "--count", "3"]) as (proc, urls):
        ...  # urls == ["tcp:127.0.0.1:40123", "tcp:127.0.0.1:40124", ...]

If no transport flag is given, `--tcp 127.0.0.1:0` is added so every vehicle
gets an ephemeral port. The process is terminated (then killed) on exit.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import tempfile
import time
from typing import Iterator, Optional, Sequence

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SimError(RuntimeError):
    pass


class SimHandle:
    """A running sim. Use as a context manager: `with start_sim(...) as (proc, urls)`."""

    def __init__(self, proc: subprocess.Popen, ready: list[tuple[int, list[str]]]):
        self.proc = proc
        self.ready = ready                      # [(sysid, [url, ...]), ...]
        self.urls = [u[0] for _, u in ready]    # first url of each vehicle
        self.by_sysid = {s: u for s, u in ready}

    def __enter__(self):
        return self.proc, self.urls

    def __exit__(self, *exc) -> None:
        self.stop()

    def __iter__(self) -> Iterator:
        return iter((self.proc, self.urls))

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        for f in (self.proc.stdout, self.proc.stderr, getattr(self, "_errfile", None)):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass


def _die_with(parent: int):
    """preexec_fn: the kernel sends SIGTERM to the sim when the process that started it dies, even by
    SIGKILL, so a killed ground station leaves no simulator behind (Linux; elsewhere a no-op)."""
    def arm() -> None:
        import ctypes  # noqa: PLC0415
        import signal  # noqa: PLC0415
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return arm


def start_sim(args: Sequence[str] = (), *, timeout: float = 15.0,
              python: Optional[str] = None, env: Optional[dict] = None,
              cwd: Optional[str] = None, stderr=None, die_with_parent: bool = False) -> SimHandle:
    """Start `python -m sim *args`, wait for one SIM READY line per vehicle.

    stderr defaults to a temporary file whose tail is quoted if the sim fails to start.
    die_with_parent: the sim is terminated when the caller dies, even by SIGKILL (see _die_with). The
    kernel watches the calling *thread*: call from the main thread, or the sim ends with the thread."""
    args = list(args)
    if not any(a in ("--tcp", "--udp-in", "--udp-out") for a in args):
        args += ["--tcp", "127.0.0.1:0"]
    count = 1
    if "--count" in args:
        count = int(args[args.index("--count") + 1])
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = _ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("PYTHONUNBUFFERED", "1")
    errfile = tempfile.TemporaryFile() if stderr is None else None
    proc = subprocess.Popen([python or sys.executable, "-m", "sim", *args], cwd=cwd or _ROOT,
                            stdout=subprocess.PIPE, stderr=errfile or stderr, env=e,
                            preexec_fn=_die_with(os.getpid()) if die_with_parent and sys.platform == "linux"
                            else None)

    def err_tail() -> str:
        if errfile is None:
            return ""
        errfile.seek(0)
        return errfile.read().decode(errors="replace")[-2000:]

    ready: list[tuple[int, list[str]]] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while len(ready) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimError(f"sim did not report ready within {timeout}s\n{err_tail()}")
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise SimError(f"sim exited early with code {proc.wait()}\n{err_tail()}")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                parts = line.decode().split()
                if parts[:2] == ["SIM", "READY"]:
                    sysid = int(parts[2].split("=")[1])
                    ready.append((sysid, parts[3:]))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        sel.close()
    handle = SimHandle(proc, ready)
    handle._errfile = errfile
    return handle
