"""The studio's defences, as one ASGI middleware, and path confinement.

A local server that runs renders and reads files is an attack surface, so every request passes:

* Host: the Host header must be the studio's own address (DNS rebinding: a foreign page whose
  name resolves to 127.0.0.1 still sends its own name) -> 403.
* Origin: a state-changing request (anything but GET/HEAD) whose Origin header is present and
  is not the studio's own origin, ``null`` included, -> 403; so is any request a browser marks as
  coming from another site (``Sec-Fetch-Site`` other than ``same-origin`` or ``none``: an embedded
  image, stream or fetch), except a top-level page load. A repeated Host, Origin or
  Sec-Fetch-Site header is 400.
* Token: when the studio listens on a non-loopback address, every request carries the token
  (``?token=`` once, which sets a cookie; the cookie; or ``Authorization: Bearer T``) -> else 403.
* Bodies: a request body larger than its cap (``--max-upload`` for uploads, 1 MiB for JSON) is
  413 from its Content-Length before anything is read, and counted while streaming otherwise.
* Every response carries a strict Content-Security-Policy (scripts and styles from the studio
  only, no inline script), ``nosniff``, no framing, no referrer; no CORS header is ever sent.

:func:`confine` turns a request's relative path into a real path under the root or raises
:class:`NotFound` (``..``, absolute paths and symlinks that point out all look like a missing file).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

__all__ = ["CSP", "JSON_LIMIT", "NotFound", "Security", "SecurityMiddleware", "TOKEN_COOKIE", "confine",
           "is_loopback", "new_token"]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
TOKEN_COOKIE = "zoomdream_studio_token"
JSON_LIMIT = 1 << 20  # bytes: any request body but an upload
SAFE_METHODS = {"GET", "HEAD"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class NotFound(Exception):
    """A path that is not a file under the root (or is refused as one): 404."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


@dataclass
class Security:
    """The security configuration of one studio: where it listens, its token, its upload cap."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None  # required on every request when set (always set off loopback)
    max_upload: int = 2 << 30
    upload_paths: tuple[str, ...] = ("/api/upload",)
    extra_hosts: set[str] = field(default_factory=set)  # more Host values to accept (tests)

    def host_allowed(self, host_header: str) -> bool:
        """The Host header names this studio: its address and port (any IP literal off a wildcard bind)."""
        if host_header in self.extra_hosts:
            return True
        name, port = split_host(host_header)
        name = name.lower()
        if port != str(self.port):
            return False
        if is_loopback(self.host):
            return name in LOOPBACK_NAMES
        if self.host in ("0.0.0.0", "::", ""):
            return _is_ip(name) or name == "localhost"  # a DNS name could be a rebinding
        return name == self.host.lower() or name in LOOPBACK_NAMES

    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")


def split_host(host_header: str) -> tuple[str, str]:
    """``name:port`` -> (name, port); IPv6 names keep their brackets; no port -> ""."""
    if host_header.startswith("["):
        end = host_header.find("]")
        if end < 0:
            return host_header, ""
        rest = host_header[end + 1:]
        return host_header[:end + 1], rest[1:] if rest.startswith(":") else ""
    name, sep, port = host_header.rpartition(":")
    return (name, port) if sep else (host_header, "")


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _repeated(scope, names: tuple[bytes, ...]) -> bool:
    """True when one of ``names`` comes more than once (which one would count is the server's guess)."""
    seen = [k.lower() for k, _ in scope.get("headers", []) if k.lower() in names]
    return len(seen) != len(set(seen))


def _navigation(method: str, h: dict[str, str]) -> bool:
    """A top-level page load (a link the user follows): harmless, since it reads nothing for the other site."""
    return method == "GET" and h.get("sec-fetch-mode") == "navigate" and h.get("sec-fetch-dest") == "document"


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *_SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


_SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                     (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
                     (b"cross-origin-resource-policy", b"same-origin")]


class BodyTooLarge(Exception):
    """A streamed body passed its cap (the route answers 413)."""


class SecurityMiddleware:
    """Every rule of the module docstring, in front of the whole app."""

    def __init__(self, app, security: Security):
        self.app, self.sec = app, security

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        h = _headers(scope)
        method = scope.get("method", "GET")
        if _repeated(scope, (b"host", b"origin", b"sec-fetch-site")):
            return await _refuse(send, 400, "a repeated Host, Origin or Sec-Fetch-Site header")
        if not self.sec.host_allowed(h.get("host", "")):
            return await _refuse(send, 403, "this studio answers only to its own address (Host header refused)")
        own_origin = f"http://{h.get('host', '')}"
        origin = h.get("origin")
        if method not in SAFE_METHODS or scope["type"] == "websocket":
            if origin is not None and origin != own_origin:
                return await _refuse(send, 403, "request from another origin refused")
        site = h.get("sec-fetch-site")
        if site not in (None, "same-origin", "none") and not _navigation(method, h):
            # another site's page (another local server's too: "same-site") may not fetch, embed or post
            return await _refuse(send, 403, "request from another site refused")
        set_cookie = False
        if self.sec.token:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [None])[0]
            set_cookie = given is not None and hmac.compare_digest(given, self.sec.token)
            auth = h.get("authorization", "")
            candidates = [given, _cookie(h.get("cookie", ""), TOKEN_COOKIE),
                          auth[7:] if auth.lower().startswith("bearer ") else None]
            if not any(c is not None and hmac.compare_digest(c, self.sec.token) for c in candidates):
                return await _refuse(send, 403, "this studio needs its token (open the URL it printed)")
        limit = self.sec.max_upload if scope.get("path") in self.sec.upload_paths else JSON_LIMIT
        length = h.get("content-length")
        if length is not None:
            if not length.isdigit():
                return await _refuse(send, 400, "bad Content-Length")
            if int(length) > limit:
                return await _refuse(send, 413, f"request body larger than {limit} bytes")
        scope.setdefault("state", {})["body_limit"] = limit
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        async def secured_send(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if not k.lower().startswith(b"access-control-")]
                headers += _SECURITY_HEADERS
                if set_cookie:
                    headers.append((b"set-cookie", f"{TOKEN_COOKIE}={self.sec.token}; Path=/; HttpOnly; "
                                                   f"SameSite=Strict".encode()))
                message = {**message, "headers": headers}
            await send(message)

        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await secured_send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, 413, f"request body larger than {limit} bytes")


def confine(root: Path, relative: str, *, must_exist: bool = True) -> Path:
    """``relative`` (a path under the root, ``/`` separated) as a real path inside ``root``, symlinks followed.

    Absolute paths, ``..`` that leaves the root, NUL bytes and symlinks that point outside all
    raise :class:`NotFound`; so does a missing file when ``must_exist``.
    """
    if not isinstance(relative, str) or not relative or "\0" in relative or "\\" in relative:
        raise NotFound(relative)
    if relative.startswith("/") or os.path.isabs(relative) or (len(relative) > 1 and relative[1] == ":"):
        raise NotFound(relative)
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, relative))
    if target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep):
        raise NotFound(relative)
    if must_exist and not os.path.exists(target):
        raise NotFound(relative)
    return Path(target)
