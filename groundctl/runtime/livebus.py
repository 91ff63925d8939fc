"""The live feed across processes: flight workers NOTIFY positions and events, API processes LISTEN and
hand them to their own LiveHub (and to the deliveries' progress), so a WebSocket on any API process shows
every flight, whichever worker flies it. PostgreSQL only; one process (SQLite) needs none of this.

A NOTIFY payload is at most 8000 bytes: positions are far smaller; an event too big to send whole (a final
report) goes out without its data, and a subscriber reads the full event from the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Engine

from groundctl.runtime.leases import LIVE
from groundctl.runtime.live import LiveHub
from groundctl.runtime.verdicts import json_safe

log = logging.getLogger("groundctl.livebus")
MAX_PAYLOAD = 7900


class Listener:
    """LISTEN on some channels in a thread of its own; `on_notify(channel, payload)` runs in that thread.
    Reconnects after a lost connection (the notifications sent meanwhile are lost: callers also poll)."""

    def __init__(self, conninfo: str, channels: list[str], on_notify: Callable[[str, str], None],
                 on_connect: Callable[[], None] | None = None) -> None:
        self.conninfo = conninfo
        self.channels = channels
        self.on_notify = on_notify
        self.on_connect = on_connect
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)

    def start(self) -> "Listener":
        self._thread.start()
        return self

    def _run(self) -> None:
        import psycopg  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    for ch in self.channels:
                        conn.execute(f'LISTEN "{ch}"')
                    self.connected.set()
                    if self.on_connect:
                        self.on_connect()
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            try:
                                self.on_notify(n.channel, n.payload)
                            except Exception:  # noqa: BLE001 - one bad message must not stop the feed
                                log.exception("notification on %s", n.channel)
            except Exception as e:  # noqa: BLE001
                self.connected.clear()
                if not self._stop.is_set():
                    log.warning("LISTEN connection lost (%s); reconnecting", e)
                    self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class NotifyingLiveHub(LiveHub):
    """A worker's live hub: what its flights show goes to the API processes through NOTIFY.

    Positions are coalesced per vehicle (the newest wins) and events are sent in order, by one sender
    thread, so a slow database never stalls the flights' event loop."""

    def __init__(self, hz: float, engine: Engine, decorate: Callable[[dict], None] | None = None) -> None:
        super().__init__(hz)
        self.engine = engine
        self.decorate = decorate  # adds what only the worker knows (vehicle time, owner) to a position
        self._q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="live-notify", daemon=True)
        self._thread.start()

    def update(self, vehicle: str, data: dict) -> None:
        if self.decorate is not None:
            self.decorate(data)
        super().update(vehicle, data)
        self._q.put(("update", vehicle))

    def publish(self, msg: dict) -> None:
        super().publish(msg)
        self._q.put(("event", msg))

    def _payloads(self, batch: list) -> list[str]:
        out, vehicles = [], []
        for kind, x in batch:
            if kind == "update":
                if x not in vehicles:
                    vehicles.append(x)
            else:
                p = json.dumps(json_safe(x), default=str)
                if len(p.encode()) > MAX_PAYLOAD:
                    p = json.dumps(json_safe({**x, "data": None, "truncated": True}), default=str)
                out.append(p)
        for v in vehicles:
            p = json.dumps(json_safe({"type": "update", "vehicle": v, "data": self.vehicles.get(v)}), default=str)
            if len(p.encode()) <= MAX_PAYLOAD:
                out.insert(0, p)
        return out

    def _send(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.engine.begin() as c:
                    for p in self._payloads(batch):
                        c.execute(text("SELECT pg_notify(:c, :p)"), {"c": LIVE, "p": p})
            except Exception as e:  # noqa: BLE001 - the live feed is best effort; events are in the store
                log.warning("live feed NOTIFY failed: %s", e)

    async def stop(self) -> None:
        await super().stop()
        self._stop.set()


class LiveRelay:
    """An API process's end: NOTIFYs from the workers into this process's LiveHub and progress map."""

    def __init__(self, engine: Engine, live: LiveHub, progress: dict[int, dict]) -> None:
        from groundctl.runtime.leases import listen_url  # noqa: PLC0415

        self.live = live
        self.progress = progress
        self.loop = asyncio.get_running_loop()
        self.listener = Listener(listen_url(engine), [LIVE], self._on_notify)

    def start(self) -> "LiveRelay":
        self.listener.start()
        return self

    def _on_notify(self, _channel: str, payload: str) -> None:
        msg = json.loads(payload)
        self.loop.call_soon_threadsafe(self._apply, msg)

    def _apply(self, msg: dict) -> None:
        if msg.get("type") == "update":
            data = msg.get("data") or {}
            self.live.update(msg["vehicle"], data)
            if data.get("delivery") is not None:
                self.progress[int(data["delivery"])] = data
        else:
            self.live.publish(msg)

    def stop(self) -> None:
        self.listener.stop()
