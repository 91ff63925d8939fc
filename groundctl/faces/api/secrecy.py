"""Keeping operator keys out of URLs and logs.

A key in a URL ends up in access logs, browser history, proxies and Referer headers, so the service
refuses it outright (400, or a closed WebSocket) instead of accepting it once and leaking it forever.
The refusal itself is logged by uvicorn with the URL, and uvicorn's debug log echoes WebSocket headers
(where the map page sends its key as a subprotocol), so the log records are redacted as well.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl

from groundctl.faces.api.problems import problem

KEY_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "x-api-key"})
# query parameters, the map's WebSocket subprotocol, and the header as uvicorn/websockets debug-log them
_PATTERNS = (
    re.compile(r"(?i)([?&](?:key|api_key|apikey|api-key|x-api-key|token|access_token)=)[^&\s\"']*"),
    re.compile(r"(?i)(groundctl\.key\.)[^\s,\"']*"),
    re.compile(r"(?i)(x-api-key:\s*)\S+"),
    re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"),
    re.compile(r"(/t/|/api/v1/track/)[A-Za-z0-9_%-]{8,}"),  # tracking links: the path is the capability
)
REDACTED = "[redacted]"
# uvicorn's loggers: the access log carries the URL, "uvicorn.error" the WebSocket lines and debug traces
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn")


def redact(text: str, secrets: frozenset[str] | set[str] = frozenset()) -> str:
    for p in _PATTERNS:
        text = p.sub(lambda m: m.group(1) + REDACTED, text)
    for s in secrets:
        if s and s in text:
            text = text.replace(s, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and string arguments in place; never drops a record.

    Arguments are redacted one by one rather than merged into the message, because uvicorn's access
    formatter unpacks record.args itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.secrets)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a, self.secrets) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v, self.secrets) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install_log_redaction(secrets: tuple[str, ...]) -> None:
    """Add the redacting filter to uvicorn's loggers (idempotent; remembers every key it was given).

    Called when the app is created and again at startup, after uvicorn has configured its logging.
    """
    for name in LOGGERS:
        logger = logging.getLogger(name)
        f = next((f for f in logger.filters if isinstance(f, RedactSecrets)), None)
        if f is None:
            f = RedactSecrets()
            logger.addFilter(f)
        f.secrets.update(s for s in secrets if s)


def _key_in_query(scope) -> bool:
    qs = scope.get("query_string") or b""
    if not qs:
        return False
    return any(k.lower() in KEY_PARAMS for k, _ in parse_qsl(qs.decode("latin-1"), keep_blank_values=True))


REASON = ("an operator key in the URL reaches access logs and browser history: send it in the X-API-Key header "
          "(the map page: open /#key=<key> or type it in; its WebSocket sends it as a subprotocol)")


class RefuseKeyInUrl:
    """Refuse any request or WebSocket carrying a key as a query parameter, before routing."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or not _key_in_query(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": "operator key in the URL is refused"})
            return
        resp = problem(400, "secret in URL", REASON, [{"field": "key", "reason": REASON}])
        await resp(scope, receive, send)
