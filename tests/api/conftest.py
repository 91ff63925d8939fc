"""A real uvicorn server on a loopback port, in a thread or a subprocess, and small HTTP helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import uvicorn

from groundctl.faces.api import Settings, create_app
from tests.pg import BACKENDS, pg_cluster  # noqa: F401  (the fixture, for the modules here)

ROOT = Path(__file__).resolve().parents[2]
OP_KEY = "test-operator-key"
OP = {"X-API-Key": OP_KEY}

# cmac scenario points (lat, lon)
CLINIC_EAST = (-35.3569483, 149.193836)
FARM_NORTH = (-35.3425298, 149.1531296)
HELIPAD = (-35.3610975, 149.1731521)
ISLAND = (-35.3483862, 149.1916328)
OUTSIDE = (-35.30, 149.10)
NEAR_HUB = (-35.3600, 149.1660)


class Clock:
    """A settable clock for the service (real time plus an offset)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


@dataclass
class ThreadServer:
    app: object
    url: str = ""
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None

    def start(self) -> "ThreadServer":
        cfg = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(15)

    @property
    def service(self):
        return self.app.state.service


def calm_weather() -> dict:
    """A current observation in core.weather's JSON form, as an operator would PUT it."""
    from datetime import datetime, timezone

    return {"valid_time": datetime.now(timezone.utc).isoformat(), "source": "test: hub anemometer",
            "wind": [{"height_m": 10, "speed_mps": 2.0, "dir_deg": 200}], "gust_mps": 3.0,
            "precip_mmph": 0.0, "visibility_m": 10000, "temp_c": 18}


def put_weather(url: str) -> None:
    r = httpx.put(f"{url}/api/v1/weather", json=calm_weather(), headers={"X-API-Key": OP_KEY}, timeout=30)
    assert r.status_code == 200, r.text


def start_thread_server(tmp: Path, *, weather: bool = True, **settings) -> ThreadServer:
    """The real app on a loopback port; with the weather set the way an operator sets it (the service
    never assumes weather it was not given, except for its own simulated demo fleet)."""
    s = Settings(data_dir=tmp, operator_keys=(OP_KEY,), **settings)
    srv = ThreadServer(create_app(s)).start()
    if weather:
        put_weather(srv.url)
    return srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ProcServer:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log: Path | None = None
    database_url: str | None = None  # None: SQLite in data_dir
    extra: tuple[str, ...] = ()  # more command-line arguments (--flights workers, --processes N)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "ProcServer":
        env = {**os.environ, "GROUNDCTL_OPERATOR_KEYS": OP_KEY, "PYTHONUNBUFFERED": "1"}
        env.pop("DATABASE_URL", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        self.log = self.data_dir / f"server-{time.time_ns()}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "groundctl.faces.api", "--port", str(self.port), "--data", str(self.data_dir),
             "--no-sim", "--log-level", "warning", *self.extra],
            cwd=ROOT, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    put_weather(self.url)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not come up")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing; the hardest way to stop."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


# Modules whose `server` runs on both engines: the ones that exercise storage (CRUD, refusals that must
# leave nothing behind, filters and pagination). The rest (screenshots, auth) run on SQLite only, to keep
# CI's time for what differs between engines.
BOTH_ENGINES = {"test_zones", "test_operations"}


def pytest_generate_tests(metafunc):
    if "server" in metafunc.fixturenames and metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_ENGINES:
        metafunc.parametrize("server", BACKENDS, indirect=True, scope="module")


def backend_url(request, backend: str) -> str | None:
    """None for SQLite in the data directory (the default); a fresh PostgreSQL database otherwise."""
    if backend == "sqlite":
        return None
    return request.getfixturevalue("pg_cluster").create_database()


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    url = backend_url(request, getattr(request, "param", "sqlite"))
    srv = start_thread_server(tmp_path_factory.mktemp("api"), database_url=url)
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def register(client: httpx.Client, name: str = "recipient") -> dict:
    r = client.post("/api/v1/recipients", json={"name": name})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def zone_body(latlon=CLINIC_EAST, name="front lawn", radius=6.0, **kw) -> dict:
    return {"name": name, "lat": latlon[0], "lon": latlon[1], "clear_radius_m": radius, **kw}


def assert_problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(body), body
    assert body["status"] == status
    for e in body["errors"]:
        assert set(e) >= {"field", "reason"}, e
    return body
