"""The forecast fetcher against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from groundctl.runtime.weather_fetch import ForecastClient, WeatherServiceError
from groundctl.errors import GroundctlError, InputError

from .conftest import DATA, NOW

FORECAST = (DATA / "forecast_cmac.json").read_bytes()
SLOW_S = 3.0


class Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}
    last_query: dict = {}

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        Handler.hits[url.path] = Handler.hits.get(url.path, 0) + 1
        Handler.last_query = parse_qs(url.query)
        if url.path == "/ok/v1/forecast":
            self._send(200, FORECAST)
        elif url.path == "/slow/v1/forecast":
            time.sleep(SLOW_S)
            self._send(200, FORECAST)
        elif url.path == "/fail/v1/forecast":
            self._send(500, b'{"error": true, "reason": "upstream model run missing"}')
        elif url.path == "/junk/v1/forecast":
            self._send(200, b"<html>maintenance</html>", "text/html")
        elif url.path == "/wrongjson/v1/forecast":
            self._send(200, b'{"hourly": {"time": "soon"}}')
        else:
            self._send(404, b'{"error": true, "reason": "no such endpoint"}')


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # the timed-out client hangs up before the slow handler writes: expected


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def server():
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True  # the slow handler must not hold up shutdown
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_ok_parses_the_forecast(server):
    c = ForecastClient(f"{server}/ok/v1/forecast", timeout_s=2)
    w = c.forecast_sync(-35.363261, 149.165230, now=NOW)
    assert w.valid_time.hour == 6 and len(w.wind) == 3
    assert w.wind[0].speed_mps == pytest.approx(4.0)
    q = Handler.last_query
    assert q["latitude"] == ["-35.3633"] and q["wind_speed_unit"] == ["ms"] and "wind_speed_80m" in q["hourly"][0]


def test_cache_hit_does_not_ask_again(server):
    ticks = [1000.0]
    c = ForecastClient(f"{server}/ok/v1/forecast", timeout_s=2, ttl_s=600, clock=lambda: ticks[0])
    before = Handler.hits.get("/ok/v1/forecast", 0)
    w1 = c.forecast_sync(-35.36326, 149.16523, now=NOW)
    w2 = c.forecast_sync(-35.3611, 149.1698, now=NOW.replace(minute=20))  # same 0.01° cell, same nearest hour
    assert w2 is w1 and c.requests == 1
    assert Handler.hits["/ok/v1/forecast"] == before + 1
    c.forecast_sync(-35.36326, 149.16523, now=NOW.replace(hour=9))  # another hour: a new request
    assert c.requests == 2
    ticks[0] += 601  # expired
    c.forecast_sync(-35.36326, 149.16523, now=NOW)
    assert c.requests == 3 and Handler.hits["/ok/v1/forecast"] == before + 3


@pytest.mark.anyio
async def test_async_forecast(server):
    c = ForecastClient(f"{server}/ok/v1/forecast", timeout_s=2)
    w = await c.forecast(-35.36, 149.16, now=NOW)
    assert w.temp_c == 17.3


@pytest.mark.parametrize("path, kind, text", [
    ("/slow/v1/forecast", "timeout", "no answer within 0.2 s"),
    ("/fail/v1/forecast", "status", "HTTP 500: upstream model run missing"),
    ("/junk/v1/forecast", "junk", "not JSON"),
    ("/wrongjson/v1/forecast", "junk", "not a forecast"),
    ("/missing", "status", "HTTP 404"),
])
def test_service_failures_are_errors_by_kind(server, path, kind, text):
    c = ForecastClient(f"{server}{path}", timeout_s=0.2)
    t0 = time.monotonic()
    with pytest.raises(WeatherServiceError) as e:
        c.forecast_sync(-35.36, 149.16, now=NOW)
    if kind == "timeout":
        assert time.monotonic() - t0 < SLOW_S - 0.5  # a timeout does not wait for the server
    assert e.value.kind == kind and text in str(e.value)
    assert e.value.field == "forecast_url" and isinstance(e.value, GroundctlError)
    assert c.requests == 1 and c.cached(-35.36, 149.16, NOW) is None  # failures are not cached


def test_connection_refused():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    with pytest.raises(WeatherServiceError) as e:
        ForecastClient(f"http://127.0.0.1:{port}/v1/forecast", timeout_s=1).forecast_sync(0, 0, now=NOW)
    assert e.value.kind in ("connect", "timeout")


def test_bad_arguments():
    with pytest.raises(InputError) as e:
        ForecastClient("ftp://example.org")
    assert e.value.field == "forecast_url"
    with pytest.raises(InputError) as e:
        ForecastClient("http://127.0.0.1:9/x").forecast_sync(95, 0, now=NOW)
    assert e.value.field == "lat"
