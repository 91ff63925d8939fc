"""A real headless Chromium driven over the DevTools protocol: load a page at a given size, wait until it
says it has drawn, read its DOM, take a screenshot, click and type.

One browser serves a whole test, so a screenshot takes a fraction of a second instead of a browser start:
a page can be caught while a (simulated) drone is in the air. Only the standard library, websockets and
Pillow are used.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
PHONE = (390, 844)
DESKTOP = (1280, 800)


class Browser:
    def __init__(self, profile: Path) -> None:
        if CHROMIUM is None:
            raise RuntimeError("no chromium")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
             "--disable-default-apps", "--disable-extensions", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("chromium exited before it listened")
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
        if port is None:
            raise RuntimeError("chromium did not open its DevTools port")
        self.http = f"http://127.0.0.1:{port}"
        target = json.loads(urllib.request.urlopen(urllib.request.Request(f"{self.http}/json/new?about:blank",
                                                                          method="PUT"), timeout=30).read())
        import websockets.sync.client as wsc

        # entered as a context manager (websockets 17 warns otherwise); closed in close()
        self.ws = wsc.connect(target["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=30).__enter__()
        self.ids = itertools.count(1)
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params) -> dict:
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, url: str, size: tuple[int, int], *, mobile: bool = False, ready: str | None = None,
             timeout: float = 30) -> None:
        """Navigate at a viewport size; wait until `ready` (a JS expression) is truthy."""
        self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                  mobile=mobile)
        self.call("Page.navigate", url=url)
        self.wait(ready or "document.readyState === 'complete'", timeout)

    def wait(self, expression: str, timeout: float = 30):
        end = time.monotonic() + timeout
        while True:
            try:
                v = self.eval(expression)
            except RuntimeError:
                v = None  # the page is between documents
            if v:
                return v
            if time.monotonic() > end:
                raise AssertionError(f"page never satisfied {expression!r}")
            time.sleep(0.05)

    def screenshot(self, path: Path | None = None, *, full: bool = False) -> np.ndarray:
        """What the viewport shows, or (full) the whole page as if scrolled through."""
        from PIL import Image

        params: dict = {"format": "png"}
        if full:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        png = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        if path is not None:
            path.write_bytes(png)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def count(img: np.ndarray, rgb, tol: int = 6) -> int:
    """Pixels of one colour (within tol per channel)."""
    return int((np.abs(img - np.array(rgb)).max(axis=2) <= tol).sum())
