"""Live fan-out of vehicle positions and delivery events to WebSocket subscribers."""

from __future__ import annotations

import asyncio
import json

from groundctl.runtime.store import utcnow
from groundctl.runtime.verdicts import json_safe


class LiveHub:
    """Latest position/phase of every vehicle, pushed to WebSocket subscribers at a fixed rate.

    One task serialises each frame once and hands the same string to every subscriber queue, so the cost
    per subscriber is a queue put and a socket write. A slow subscriber skips old frames instead of
    holding everyone back.
    """

    def __init__(self, hz: float) -> None:
        self.period = 1.0 / hz
        self.vehicles: dict[str, dict] = {}
        self.subscribers: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self.frames = 0

    def update(self, vehicle: str, data: dict) -> None:
        self.vehicles[vehicle] = data

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=20)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.subscribers.discard(q)

    def publish(self, msg: dict) -> None:
        self._fan_out(json.dumps(json_safe(msg)))

    def _fan_out(self, text: str) -> None:
        for q in list(self.subscribers):
            if q.full():  # a slow reader loses its oldest frame: the newest position is the one that matters
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:
                    pass
            q.put_nowait(text)

    def snapshot(self) -> dict:
        return {"type": "snapshot", "time": utcnow().isoformat(), "vehicles": list(self.vehicles.values())}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while True:
            if self.subscribers:
                self._fan_out(json.dumps(self.snapshot(), default=str))
                self.frames += 1
            nxt += self.period
            delay = nxt - loop.time()
            if delay < -self.period:  # fell far behind: do not burst to catch up
                nxt = loop.time()
                delay = 0
            await asyncio.sleep(max(0.0, delay))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="live-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


# -- the service --------------------------------------------------------------------------------------
