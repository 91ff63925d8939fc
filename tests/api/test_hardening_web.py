"""Hardening of the HTTP face, against the real server on loopback: security headers, /docs with no CDN,
the map under its Content-Security-Policy, the live feed's Origin check, and rate limits.

The server here runs with the uvicorn options `groundctl serve` uses (serve.UVICORN_OPTIONS): uvicorn's
defaults would take X-Forwarded-For from any loopback peer as the client address.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn

from groundctl.faces.api import Settings, create_app
from groundctl.faces.api.serve import UVICORN_OPTIONS
from tests.api.cdp import CHROMIUM, Browser
from tests.api.conftest import OP, OP_KEY, ThreadServer, assert_problem, put_weather, register, zone_body

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium)")


class ServeLikeServer(ThreadServer):
    def start(self) -> "ServeLikeServer":
        cfg = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
                             **UVICORN_OPTIONS)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        return self


def settings_with(tmp, **over) -> Settings:
    return Settings(data_dir=tmp, operator_keys=(OP_KEY,), **over)


def start(tmp, **settings) -> ServeLikeServer:
    srv = ServeLikeServer(create_app(settings_with(tmp, **settings))).start()
    put_weather(srv.url)
    return srv


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("hardening"))
    yield s
    s.stop()


# -- headers ----------------------------------------------------------------------------------------

def csp_directives(value: str) -> dict[str, list[str]]:
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_security_headers_on_every_kind_of_response(tmp_path):
    app = create_app(settings_with(tmp_path))

    async def boom() -> dict:
        raise RuntimeError("a bug")

    app.add_api_route("/test-only/boom", boom)  # the real app plus one route that fails, for the 500
    srv = ServeLikeServer(app).start()
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        responses = {
            "page": c.get("/"), "script": c.get("/static/map.js"), "docs": c.get("/docs"),
            "public json": c.get("/api/v1/airspace"), "health": c.get("/healthz"),
            "registration": c.post("/api/v1/recipients", json={"name": "headers"}),
            "401": c.get("/api/v1/kpis"), "404": c.get("/nothing/here"),
            "422": c.post("/api/v1/recipients", json={"name": ""}),
            "400 key in URL": c.get("/api/v1/kpis?key=whatever"),
            "413": c.post("/api/v1/recipients", content=b"x" * 2_000_000, headers={"content-type": "application/json"}),
        }
    with httpx.Client(base_url=srv.url, timeout=30) as c:  # uvicorn closes a connection after an error
        responses["500"] = c.get("/test-only/boom")
    srv.stop()
    assert responses["500"].status_code == 500
    for what, r in responses.items():
        h = r.headers
        csp = csp_directives(h.get("content-security-policy", ""))
        assert csp.get("script-src") == ["'self'"], (what, h.get("content-security-policy"))  # no inline, no eval
        assert csp.get("frame-ancestors") == ["'none'"], what
        assert csp.get("object-src") == ["'none'"] and csp.get("base-uri") == ["'none'"], what
        assert h.get("x-content-type-options") == "nosniff", what
        assert h.get("x-frame-options") == "DENY", what
        assert h.get("referrer-policy") == "no-referrer", what
        assert "server" not in h, (what, h.get("server"))
    # a response carrying a new token is never cached
    assert responses["registration"].status_code == 201
    assert responses["registration"].headers["cache-control"] == "no-store"


# -- /docs and the map in a real browser ------------------------------------------------------------

@needs_chromium
def test_docs_load_from_this_server_only(srv, tmp_path):
    """Swagger UI renders every operation with no request leaving the server's origin (FastAPI's default
    page loads its script and CSS from a CDN, which an offline station or a strict network refuses)."""
    ops = len([1 for p in httpx.get(srv.url + "/openapi.json").json()["paths"].values() for _ in p])
    with Browser(tmp_path) as b:
        log = b.visit(srv.url + "/docs", f"document.querySelectorAll('.opblock').length >= {ops}")
    assert log.value, f"Swagger UI did not render the {ops} operations"
    foreign = [u for u in log.requests if not u.startswith(srv.url) and not u.startswith("data:")]
    assert not foreign, f"/docs reached other origins: {foreign}"
    assert not log.failed, log.failed
    assert not log.csp, f"Content-Security-Policy blocked: {log.csp}"
    assert not log.errors, log.errors
    assert log.statuses.get(srv.url + "/openapi.json") == 200


@needs_chromium
def test_map_page_works_under_the_policy(srv, tmp_path):
    """Under script-src 'self' the map still fetches its data and opens the live feed (connect-src 'self'
    covers ws:// to the same host; the Origin check lets the page's own origin in)."""
    with Browser(tmp_path) as b:
        log = b.visit(f"{srv.url}/#key={OP_KEY}",
                      "performance.getEntriesByType('resource').some(e => e.name.includes('/api/v1/map'))")
        # the feed's handshake may trail the map's fetch a little
        deadline = time.monotonic() + 10
        while not log.websockets and time.monotonic() < deadline:
            log = b.visit(f"{srv.url}/#key={OP_KEY}", "false", timeout=2)
    assert log.statuses.get(srv.url + "/api/v1/map") == 200
    assert log.websockets.get(srv.url.replace("http", "ws") + "/api/v1/live/ws") == 101, log.websockets
    assert not log.csp, f"Content-Security-Policy blocked: {log.csp}"
    assert not [f for f in log.failed if not f[0].endswith("/favicon.ico")], log.failed
    assert not [e for e in log.errors if "favicon.ico" not in e], log.errors


# -- the live feed's Origin check --------------------------------------------------------------------

def ws_status(url: str, headers: dict) -> int:
    """101 and a first snapshot, or the HTTP status the handshake was refused with."""
    from websockets.exceptions import InvalidStatus  # noqa: PLC0415
    from websockets.sync.client import connect  # noqa: PLC0415

    try:
        with connect(url.replace("http", "ws") + "/api/v1/live/ws", additional_headers=headers,
                     open_timeout=10) as ws:
            assert "vehicles" in ws.recv(timeout=10)
            return 101
    except InvalidStatus as e:
        return e.response.status_code


def test_live_feed_refuses_other_origins(srv):
    key = {"X-API-Key": OP_KEY}
    # a page on another site, even holding a valid key
    assert ws_status(srv.url, {**key, "Origin": "https://evil.example"}) == 403
    assert ws_status(srv.url, {**key, "Origin": "null"}) == 403  # sandboxed frames, file:// pages
    port = srv.url.rsplit(":", 1)[1]
    assert ws_status(srv.url, {**key, "Origin": f"http://127.0.0.1:{int(port) + 1}"}) == 403  # another port
    # the service's own pages, and clients that are not browsers (no Origin), with the key
    assert ws_status(srv.url, {**key, "Origin": srv.url}) == 101
    assert ws_status(srv.url, key) == 101
    # the Origin check does not replace the key
    assert ws_status(srv.url, {"Origin": srv.url, "X-API-Key": "wrong"}) == 403


def test_live_feed_allows_configured_origins(tmp_path):
    s = start(tmp_path, allowed_origins=("https://ops.example.org",))
    try:
        assert ws_status(s.url, {"X-API-Key": OP_KEY, "Origin": "https://ops.example.org"}) == 101
        assert ws_status(s.url, {"X-API-Key": OP_KEY, "Origin": "https://other.example.org"}) == 403
    finally:
        s.stop()


# -- rate limits --------------------------------------------------------------------------------------

def test_registrations_limited_per_address_and_x_forwarded_for_not_trusted(tmp_path):
    s = start(tmp_path, rate_registrations="3/hour")
    try:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            for i in range(3):
                assert c.post("/api/v1/recipients", json={"name": f"r{i}"}).status_code == 201
            r = c.post("/api/v1/recipients", json={"name": "one too many"})
            body = assert_problem(r, 429)
            assert body["limit"] == {"name": "registrations_per_address", "rate": "3 per 1 hour"}
            assert body["errors"][0]["field"] == "registrations_per_address"
            assert 1 <= int(r.headers["retry-after"]) <= 3600
            # a made-up forwarding header is not a new address: no proxy is trusted by default
            r = c.post("/api/v1/recipients", json={"name": "spoof"}, headers={"X-Forwarded-For": "203.0.113.9"})
            assert_problem(r, 429)
            # the refused registrations stored nothing: only the three tokens work
            assert s.service.recipients.for_token("gct_nothing") is None
            # other requests from the same address are not limited by this budget
            assert c.get("/api/v1/airspace").status_code == 200
    finally:
        s.stop()


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(tmp_path):
    s = start(tmp_path, rate_registrations="2/hour", trusted_proxies=("127.0.0.0/8",))
    try:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            def reg(xff: str) -> int:
                return c.post("/api/v1/recipients", json={"name": "p"}, headers={"X-Forwarded-For": xff}).status_code

            assert [reg("198.51.100.7"), reg("198.51.100.7"), reg("198.51.100.7")] == [201, 201, 429]
            assert reg("198.51.100.8") == 201  # another client behind the same proxy has its own budget
            # the proxy appends the address it saw; what the client wrote to the left proves nothing
            assert reg("192.0.2.1, 198.51.100.7") == 429
            assert reg("not-an-address, 198.51.100.8") == 201
    finally:
        s.stop()


def test_recipient_writes_limited_per_recipient(tmp_path):
    s = start(tmp_path, rate_recipient_writes="3/minute")
    try:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            a, b = register(c, "busy"), register(c, "quiet")
            codes = [c.post("/api/v1/zones", json=zone_body(name=f"z{i}"), headers=a).status_code for i in range(3)]
            assert codes == [201, 201, 201]
            r = c.post("/api/v1/zones", json=zone_body(name="z3"), headers=a)
            body = assert_problem(r, 429)
            assert body["limit"]["name"] == "recipient_writes" and int(r.headers["retry-after"]) >= 1
            assert c.get("/api/v1/zones", headers=a).json()["total"] == 3  # reads go on; nothing was written
            assert c.post("/api/v1/zones", json=zone_body(name="b"), headers=b).status_code == 201
            assert c.post("/api/v1/deliveries", json={"zone_id": 1, "parcel": {"mass_kg": 1}},
                          headers=OP).status_code in (201, 409)  # operators are not counted here
    finally:
        s.stop()


def test_bad_rate_setting_fails_at_start_naming_it(tmp_path):
    with pytest.raises(ValueError, match="rate_registrations"):
        create_app(settings_with(tmp_path, rate_registrations="lots"))
    with pytest.raises(ValueError, match="trusted_proxies"):
        create_app(settings_with(tmp_path, trusted_proxies=("the proxy",)))


def test_guessing_keys_and_tokens_is_limited_per_address(tmp_path):
    s = start(tmp_path, rate_failed_credentials="3/minute", trusted_proxies=("127.0.0.1",))
    try:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            guesser, other = {"X-Forwarded-For": "198.51.100.66"}, {"X-Forwarded-For": "198.51.100.67"}
            for _ in range(5):  # no credentials at all: told so, never counted
                assert_problem(c.get("/api/v1/kpis", headers=guesser), 401)
            assert_problem(c.get("/api/v1/kpis", headers={**guesser, "X-API-Key": "guess-1"}), 401)
            assert_problem(c.get("/api/v1/me", headers={**guesser, "Authorization": "Bearer gct_guess"}), 401)
            assert ws_status(s.url, {**guesser, "X-API-Key": "guess-2"}) == 403
            # over the limit: refused before any key is looked at, the right one included
            body = assert_problem(c.get("/api/v1/kpis", headers={**guesser, **OP}), 429)
            assert body["limit"]["name"] == "failed_credentials" and int(body["retry_after_s"]) >= 1
            assert ws_status(s.url, {**guesser, **OP}) == 403
            # another address is not held up by the guesser
            assert c.get("/api/v1/kpis", headers={**other, **OP}).status_code == 200
    finally:
        s.stop()
