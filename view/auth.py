"""Access control and browser hardening for every response (a plain ASGI middleware, so the event
stream passes through unbuffered).

Access: with no token and no basic auth configured, everyone who can reach the port may look (the
default bind is loopback). With a token, a request passes with `Authorization: Bearer <token>` or
the session cookie; `?token=<token>` on any page sets that cookie and redirects to the page
without it, so the token leaves the address bar and the history. With basic auth, the browser asks
for user and password. Either configured method is enough. `/healthz` is always open.

Hardening: a Content-Security-Policy that allows only the view's own scripts, styles and images
(no inline script, so even markup that slipped through could not run), no sniffing, no framing,
no referrer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from http.cookies import CookieError, SimpleCookie
from typing import Any, Awaitable, Callable, MutableMapping
from urllib.parse import parse_qsl, urlencode

from view.settings import ViewSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "lw_view"
OPEN_PATHS = ("/healthz",)
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def _session_value(token: str) -> str:
    """The cookie holds a digest of the token, not the token itself."""
    return hmac.new(token.encode(), b"linewatch-view-session", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class AccessGuard:
    """Checks credentials (when configured) and adds the security headers to every response."""

    def __init__(self, app: ASGIApp, settings: ViewSettings) -> None:
        self.app = app
        self.token = settings.view_token.get_secret_value() if settings.view_token else None
        self.basic = (
            (settings.view_basic_user or "", settings.view_basic_password.get_secret_value())
            if settings.view_basic_password is not None else None
        )
        self.session = _session_value(self.token) if self.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if (self.token is None and self.basic is None) or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send_hardened)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self.token is not None and _same(query.get("token", ""), self.token):
            await self._set_cookie_and_redirect(scope, query, send_hardened)
            return
        user = self._user(scope)
        if user is None:
            await self._refuse(send_hardened)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send_hardened)

    def _user(self, scope: Scope) -> str | None:
        """Who the request is ("" for the token holder), or None when it carries no valid credential."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        authorization = headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if self.token is not None:
            if scheme.lower() == "bearer" and _same(value.strip(), self.token):
                return ""
            cookie = SimpleCookie()
            try:
                cookie.load(headers.get("cookie", ""))
            except CookieError:
                cookie = SimpleCookie()
            if COOKIE in cookie and self.session and _same(cookie[COOKIE].value, self.session):
                return ""
        if self.basic is not None and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            # Both compared, always, so timing tells nothing about which one was wrong.
            if _same(user, self.basic[0]) & _same(password, self.basic[1]):
                return user
        return None

    async def _set_cookie_and_redirect(self, scope: Scope, query: dict[str, str], send: Send) -> None:
        rest = urlencode({k: v for k, v in query.items() if k != "token"})
        location = scope["path"] + (f"?{rest}" if rest else "")
        cookie = f"{COOKIE}={self.session}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode())]})
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, send: Send) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if self.basic is not None:
            headers.append((b"www-authenticate", b'Basic realm="linewatch", charset="UTF-8"'))
        body = b"401: sign in (basic auth) or open the view once as /?token=<token>\n"
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
