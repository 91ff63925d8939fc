"""Single-threaded loop for every vehicle: one selector for all sockets and a
simulated clock that runs `speedup` times faster than the wall clock."""

from __future__ import annotations

import selectors
import time

DT = 0.05          # physics / logic step, sim seconds
MAX_LAG_S = 1.0    # if the host cannot keep up, let sim time slip rather than spiral


class Runner:
    def __init__(self, speedup: float = 1.0):
        self.sel = selectors.DefaultSelector()
        self.speedup = max(float(speedup), 1e-3)
        self.now = 0.0
        self._wall0 = time.monotonic()
        self._sim0 = 0.0
        self._epoch0 = time.time()
        self.vehicles: list = []
        self._soon: list = []
        self.dirty: list = []  # links with queued output
        self.running = True

    def set_speedup(self, speedup: float) -> None:
        self._sim0 = self.now
        self._wall0 = time.monotonic()
        self.speedup = max(float(speedup), 1e-3)

    def call_soon(self, fn) -> None:
        self._soon.append(fn)

    def epoch_us(self) -> int:
        return int((self._epoch0 + self.now) * 1e6)

    def _target(self) -> float:
        return self._sim0 + (time.monotonic() - self._wall0) * self.speedup

    def run_once(self) -> None:
        target = self._target()
        if target - self.now > MAX_LAG_S:
            self._sim0 = self.now
            self._wall0 = time.monotonic()
            target = self.now + DT
        steps = 0
        while self.now + DT <= target and steps < 50:
            self.now += DT
            for v in self.vehicles:
                v.step(self.now, DT)
            steps += 1
            if self._soon:
                soon, self._soon = self._soon, []
                for fn in soon:
                    fn()
        self.flush()
        wait = max(0.0, (self.now + DT - self._target()) / self.speedup)
        for key, mask in self.sel.select(min(wait, 0.05)):
            key.data(mask)
        self.flush()
        if self._soon:
            soon, self._soon = self._soon, []
            for fn in soon:
                fn()
            self.flush()

    def flush(self) -> None:
        if self.dirty:
            dirty, self.dirty = self.dirty, []
            for link in dirty:
                link.flush()

    def run(self) -> None:
        while self.running:
            self.run_once()
