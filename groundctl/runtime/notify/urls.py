"""Webhook URLs: what may be registered, and where a recipient's webhook may not be sent (SSRF)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from groundctl.errors import InputError

MAX_URL = 2000


def _private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified)


def check_url(url: str, *, allow_private: bool, field: str = "url") -> str:
    """The URL if a webhook may be registered for it; else InputError naming the field and why."""
    if not isinstance(url, str) or not url:
        raise InputError("a webhook URL is required", field=field)
    if len(url) > MAX_URL:
        raise InputError(f"longer than {MAX_URL} characters", field=field)
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InputError("contains whitespace or control characters", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InputError(f"not a valid URL ({e})", field=field) from None
    if parts.scheme not in ("http", "https"):
        raise InputError("only http and https URLs can receive webhooks", field=field)
    host = parts.hostname
    if not host:
        raise InputError("has no host", field=field)
    if parts.username or parts.password:
        raise InputError("must not carry credentials; the signature authenticates the sender", field=field)
    if parts.fragment:
        raise InputError("must not have a #fragment", field=field)
    if port == 0:
        raise InputError("port 0 cannot receive", field=field)
    if not allow_private:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if (ip is not None and _private(ip)) or host.lower() == "localhost" or host.lower().endswith(".localhost"):
            raise InputError("points into a private or loopback network", field=field)
    return url


async def refuse_private_target(url: str, getaddrinfo=None) -> str | None:  # noqa: ANN001
    """Why a recipient's webhook must not be sent to where its host resolves now (None if it may): checked
    at send time as well, since a name can be re-pointed at an internal address after registration."""
    parts = urlsplit(url)
    try:
        if getaddrinfo is None:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
        else:  # socket.getaddrinfo's signature, on a pool of the caller's choosing
            infos = await getaddrinfo(parts.hostname, parts.port or 443, 0, socket.SOCK_STREAM)
    except OSError as e:
        return f"cannot resolve {parts.hostname}: {e}"
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if _private(ip):
            return f"{parts.hostname} resolves to a private or loopback address"
    return None
