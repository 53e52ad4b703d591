"""Who may read and who may act: the operator token, sessions, and the checks against
cross-site requests and DNS rebinding.

- Reads are open when ``open_reads`` (the console listens on a loopback address only), else
  they need a session or the token as ``Authorization: Bearer``.
- Actions (POST) need the operator token: a session made by entering it (``/login``) plus the
  session's CSRF token in the form, or ``Authorization: Bearer TOKEN`` (no cookie, so no
  cross-site use). Without a configured token the console acts on nothing.
- Every POST from a browser must come from this origin: ``Sec-Fetch-Site`` other than
  ``same-origin``/``none`` and an ``Origin`` of another host are refused, whatever the token.
- On a loopback listener the ``Host`` must be a loopback name, so that a page of another site
  whose name was made to resolve to 127.0.0.1 (DNS rebinding) reads nothing.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

__all__ = ("SESSION_COOKIE", "Guard", "Refusal")

SESSION_COOKIE = "reventless_session"
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_MAX_SESSIONS = 1000


class Refusal(Exception):
    """A request refused: the HTTP status and why, shown to the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Guard:
    token: str | None
    open_reads: bool
    loopback: bool
    # session id -> its CSRF token; kept in memory: a restart logs everyone out.
    sessions: dict[str, str] = field(default_factory=dict)

    def check_host(self, request: Request) -> None:
        if not self.loopback:
            return
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in _LOOPBACK_NAMES:
            raise Refusal(421, "this console answers on a loopback address only (Host refused)")

    def session(self, request: Request) -> str | None:
        """The session's CSRF token, None without a valid session."""
        sid = request.cookies.get(SESSION_COOKIE)
        return None if sid is None else self.sessions.get(sid)

    def bearer(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if self.token is None or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].encode(), self.token.encode())

    def check_read(self, request: Request) -> None:
        self.check_host(request)
        if self.open_reads or self.bearer(request) or self.session(request) is not None:
            return
        raise Refusal(401, "reading this console needs the operator token: sign in")

    def check_same_origin(self, request: Request) -> None:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise Refusal(403, f"refused: a cross-site request (Sec-Fetch-Site: {site})")
        origin = request.headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if origin == "null" or parts.netloc != request.headers.get("host", ""):
                raise Refusal(403, "refused: the request comes from another origin")

    def check_action(self, request: Request, form_csrf: str | None) -> None:
        self.check_host(request)
        self.check_same_origin(request)
        if self.token is None:
            raise Refusal(
                403, "this console is read-only: start it with --token (or REVENTLESS_WEB_TOKEN)"
            )
        if self.bearer(request):
            return
        expected = self.session(request)
        if expected is None:
            raise Refusal(401, "actions need the operator token: sign in first")
        if form_csrf is None or not hmac.compare_digest(form_csrf.encode(), expected.encode()):
            raise Refusal(403, "refused: the form's CSRF token is missing or stale; reload")

    def login(self, request: Request, given: str) -> str:
        """A new session id for the right token."""
        self.check_host(request)
        self.check_same_origin(request)
        if self.token is None:
            raise Refusal(403, "this console has no operator token: there is nothing to sign in")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise Refusal(401, "wrong operator token")
        if len(self.sessions) >= _MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = secrets.token_urlsafe(32)
        return sid

    def logout(self, request: Request) -> None:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid is not None:
            self.sessions.pop(sid, None)
