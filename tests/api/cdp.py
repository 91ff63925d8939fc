"""Headless Chromium driven over the DevTools protocol: every request a page makes, every request that
failed, Content-Security-Policy violations, script errors, and WebSocket handshakes.

Screenshots (test_map_page) show what a page drew; this shows what it tried to do and what was refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

# a securitypolicyviolation listener installed by DevTools before any page script (DevTools' own script is
# not subject to the page's policy)
_WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", e =>
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline")));
"""


@dataclass
class PageLog:
    requests: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, error text or blocked reason)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # uncaught exceptions and console errors
    csp: list[str] = field(default_factory=list)
    websockets: dict[str, int] = field(default_factory=dict)  # url -> handshake status (0: never answered)
    value: object = None  # the last value of the wait expression
    ids: dict[str, str] = field(default_factory=dict)  # DevTools request id -> url


class Browser:
    def __init__(self, tmp: Path) -> None:
        profile = tmp / "cdp-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
             "--disable-extensions", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def visit(self, url: str, until: str, timeout: float = 30.0, settle_s: float = 0.5) -> PageLog:
        """Open url in a fresh tab and watch it until the JavaScript expression `until` is truthy (then a
        short settle for stragglers), or the timeout. Returns what happened."""
        from websockets.sync.client import connect  # noqa: PLC0415

        tab = httpx.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=10).json()
        log = PageLog()
        ws_ids: dict[str, str] = {}
        with connect(tab["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            seq = 0
            pending: dict[int, dict] = {}

            def send(method: str, **params) -> int:
                nonlocal seq
                seq += 1
                ws.send(json.dumps({"id": seq, "method": method, "params": params}))
                return seq

            def pump(wait_for: int | None, until_t: float) -> dict | None:
                while time.monotonic() < until_t:
                    try:
                        raw = ws.recv(timeout=max(0.01, min(0.2, until_t - time.monotonic())))
                    except TimeoutError:
                        if wait_for is None:
                            return None
                        continue
                    m = json.loads(raw)
                    if "id" in m:
                        pending[m["id"]] = m
                        if m["id"] == wait_for:
                            return m
                        continue
                    self._record(log, ws_ids, m.get("method"), m.get("params") or {})
                return None

            deadline = time.monotonic() + timeout
            for method in ("Network.enable", "Runtime.enable", "Log.enable", "Page.enable"):
                pump(send(method), deadline)
            pump(send("Page.addScriptToEvaluateOnNewDocument", source=_WATCH_CSP), deadline)
            pump(send("Page.navigate", url=url), deadline)
            while time.monotonic() < deadline:
                r = pump(send("Runtime.evaluate", expression=until, returnByValue=True), deadline)
                log.value = ((r or {}).get("result") or {}).get("result", {}).get("value")
                if log.value:
                    break
                pump(None, time.monotonic() + 0.2)
            pump(None, time.monotonic() + settle_s)
            r = pump(send("Runtime.evaluate", expression="JSON.stringify(window.__csp || [])", returnByValue=True),
                     time.monotonic() + 5)
            log.csp = json.loads(((r or {}).get("result") or {}).get("result", {}).get("value") or "[]")
        httpx.get(f"http://127.0.0.1:{self.port}/json/close/{tab['id']}", timeout=10)
        return log

    @staticmethod
    def _record(log: PageLog, ws_ids: dict, method: str | None, p: dict) -> None:
        if method == "Network.requestWillBeSent":
            log.requests.append(p["request"]["url"])
            log.ids[p["requestId"]] = p["request"]["url"]
        elif method == "Network.responseReceived":
            log.statuses[p["response"]["url"]] = p["response"]["status"]
        elif method == "Network.loadingFailed":
            log.failed.append((log.ids.get(p.get("requestId"), "?"),
                               p.get("blockedReason") or p.get("errorText") or "failed"))
        elif method == "Network.webSocketCreated":
            ws_ids[p["requestId"]] = p["url"]
            log.websockets[p["url"]] = 0
            log.requests.append(p["url"])
        elif method == "Network.webSocketHandshakeResponseReceived":
            log.websockets[ws_ids.get(p["requestId"], "?")] = p["response"]["status"]
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails") or {}
            log.errors.append((d.get("exception") or {}).get("description") or d.get("text") or "exception")
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            log.errors.append(f"{p['entry'].get('source')}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
