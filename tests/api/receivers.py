"""Real receivers on loopback ports for notification tests: an HTTP webhook receiver that can fail, hang and
recover on cue, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Hit:
    path: str
    headers: dict
    body: bytes
    answered: str  # what the receiver did: "ok", "500", "hang"
    at: float = field(default_factory=time.monotonic)


class WebhookReceiver:
    """ThreadingHTTPServer on 127.0.0.1:0. `script[path]` is a list of behaviours for that path's successive
    requests ("500", "hang", "ok"); past its end the path answers with `after[path]` (default "ok").
    A hung request sleeps `hang_s` (longer than the sender's timeout) and then answers 200: the receiver
    did get and process the message, but the sender gave up; that is how duplicates happen."""

    def __init__(self, hang_s: float = 2.0) -> None:
        self.hang_s = hang_s
        self.script: dict[str, list[str]] = {}
        self.after: dict[str, str] = {}
        self.choosers: dict[str, Callable[[], str]] = {}  # a behaviour per request, e.g. seeded random
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                with outer.lock:
                    todo = outer.script.get(self.path)
                    chooser = outer.choosers.get(self.path)
                    what = todo.pop(0) if todo else chooser() if chooser else outer.after.get(self.path, "ok")
                    outer.hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body, what))
                if what == "hang":
                    time.sleep(outer.hang_s)
                code = 500 if what == "500" else 200
                try:
                    self.send_response(code)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender hung up on a hung request

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def for_path(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1, collecting every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller  # noqa: PLC0415

        self.messages: list[email.message.EmailMessage] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001
                outer.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return "250 OK"

        with socket.socket() as sk:  # the controller checks its own port by connecting: it needs a real one
            sk.bind(("127.0.0.1", 0))
            port = sk.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)

    def start(self) -> "SmtpReceiver":
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return self.controller.port

    def stop(self) -> None:
        self.controller.stop()
