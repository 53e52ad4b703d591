"""The console's ASGI application: pages, actions, ``/healthz``.

Pages are rendered on the server (Jinja2, every value escaped); ``static/console.js`` refreshes
the parts marked ``data-live`` by polling the same page, so nothing is built and nothing is
loaded from elsewhere (the Content-Security-Policy says so to the browser).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import msgspec
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from reventless.errors import (
    BackendUnavailableError,
    ReactionNotFoundError,
    ReventlessError,
    ScheduleNotFoundError,
    UsageError,
    ValidationError,
)
from reventless.health import Health, Problem, check, words
from reventless.provider import Provider, ProvidesReactions
from reventless.schedule import check_name, dst_text, rate_text
from reventless.scheduler import SchedulerOperations
from reventless.web._guard import SESSION_COOKIE, Guard, Refusal
from reventless.web._metrics import metrics_text
from reventless.web._model import STATES, ConsoleModel
from reventless.web._svg import timeline_svg
from reventless.web._words import rate_words

__all__ = ("create_app",)

_log = logging.getLogger("reventless.web")
_PAGE_SIZE = 50
_HISTORY_PAGE = 50
_MAX_BODY = 64 * 1024
_FLASH = "reventless_flash"
_TEXT = re.compile(r"[^\x00-\x1f\x7f]{0,64}")
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" makes forms send Origin: null
    "x-frame-options": "DENY",
}

Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    provider: Provider,
    *,
    token: str | None = None,
    open_reads: bool = True,
    loopback: bool = True,
    late_after: timedelta = timedelta(seconds=60),
    max_lag: timedelta = timedelta(minutes=5),
    poll_seconds: float = 2.0,
    schedulers: Sequence[str] | None = None,
) -> Starlette:
    """The console on ``provider`` (open for the application's lifetime).

    ``token``: the operator token every action needs (None: read-only). ``open_reads``: pages
    are shown without the token (only sensible on a loopback listener). ``loopback``: the
    listener is on a loopback address, so requests naming another host are refused.
    ``late_after``/``max_lag``: the thresholds of "late" and of ``/healthz``. ``schedulers``:
    the ones to show (default: every one the provider lists; name them where it cannot, AWS).
    """
    console = _Console(
        ConsoleModel(
            provider,
            late_after=late_after,
            schedulers=None if schedulers is None else list(schedulers),
        ),
        Guard(token=token, open_reads=open_reads, loopback=loopback),
        max_lag,
        poll_seconds,
    )
    routes = [
        Route("/", console.home),
        Route("/schedules", console.guarded(console.schedules_page)),
        Route("/timeline", console.guarded(console.timeline_page)),
        Route("/timeline.svg", console.guarded(console.timeline_image)),
        Route("/schedules/{scheduler}/{name}", console.guarded(console.schedule_page)),
        Route("/reactions", console.guarded(console.reactions_page)),
        Route("/healthz", console.healthz),
        Route("/metrics", console.metrics),
        Route("/login", console.login_page),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route("/schedules/{scheduler}/{name}/{action}", console.schedule_action, methods=["POST"]),
        Route("/redrive/{scheduler}", console.redrive, methods=["POST"]),
        Route("/reactions/{name}/resume", console.resume_reaction, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("reventless.web", "static")]), name="static"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: console.http_error,  # type: ignore[dict-item]
            Refusal: console.refused,  # type: ignore[dict-item]
            Exception: console.internal_error,
        },
        middleware=[],
    )


def _date(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


class _Console:
    def __init__(
        self, model: ConsoleModel, guard: Guard, max_lag: timedelta, poll_seconds: float
    ) -> None:
        self.model = model
        self.guard = guard
        self.max_lag = max_lag
        self.poll_ms = int(poll_seconds * 1000)
        self.env = Environment(
            loader=PackageLoader("reventless.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.env.filters["utc"] = _date
        self.env.filters["words"] = words
        self.env.filters["dst"] = dst_text
        self.env.filters["url"] = lambda text: quote(str(text), safe="")

    # -- rendering -----------------------------------------------------------------------------

    def render(self, request: Request, template: str, code: int = 200, **values: Any) -> Response:
        csrf = self.guard.session(request)
        page = self.env.get_template(template).render(
            request=request,
            csrf=csrf,
            signed_in=csrf is not None,
            can_act=self.guard.token is not None,
            poll_ms=self.poll_ms,
            flash=_read_flash(request),
            **values,
        )
        response = HTMLResponse(page, status_code=code, headers=_SECURITY_HEADERS)
        if request.cookies.get(_FLASH) is not None:
            response.delete_cookie(_FLASH, path="/")
        return response

    def error_page(self, request: Request, status: int, message: str) -> Response:
        try:
            return self.render(request, "error.html", status, status=status, message=message)
        except Exception:  # the error page itself must never fail into a traceback
            return Response(f"{status}: {message}", status, media_type="text/plain")

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        return self.error_page(request, exc.status_code, str(exc.detail))

    async def refused(self, request: Request, exc: Refusal) -> Response:
        return self.error_page(request, exc.status, exc.message)

    async def internal_error(self, request: Request, exc: Exception) -> Response:
        _log.exception("the console failed on %s %s", request.method, request.url.path)
        return self.error_page(request, 500, f"internal error ({type(exc).__name__}); see the log")

    def guarded(self, handler: Handler) -> Handler:
        async def read(request: Request) -> Response:
            self.guard.check_read(request)
            try:
                return await handler(request)
            except ScheduleNotFoundError as exc:
                return self.error_page(request, 404, str(exc))
            except BackendUnavailableError as exc:
                return self.error_page(request, 503, str(exc))
            except ReventlessError as exc:
                return self.error_page(request, 400, str(exc))

        return read

    # -- pages ---------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/schedules", 303)

    async def _schedulers(self) -> tuple[list[str], Any, str | None]:
        return await self.model.schedulers()

    async def schedules_page(self, request: Request) -> Response:
        query = _Query(request)
        known, engine, missing = await self._schedulers()
        scheduler = query.choice("scheduler", ["", *known])
        state = query.choice("state", list(STATES), default="any")
        text = query.text("q")
        after = query.text("after") or None
        if after is not None and ("/" not in after or not all(after.split("/", 1))):
            raise HTTPException(400, "after: expected SCHEDULER/NAME from a 'next page' link")
        chosen = [scheduler] if scheduler else known
        page = await self.model.schedules(chosen, state=state, text=text, after=after)
        return self.render(
            request,
            "schedules.html",
            schedulers=known,
            engine=engine,
            missing=missing,
            scheduler=scheduler,
            state=state,
            states=STATES,
            text=text,
            page=page,
            now=self.model.now(),
            next_url=_with(request, after=page.next_token) if page.next_token else None,
        )

    async def timeline_page(self, request: Request) -> Response:
        known, _, missing = await self._schedulers()
        timeline = await self.model.timeline(known)
        return self.render(
            request,
            "timeline.html",
            timeline=timeline,
            svg=timeline_svg(timeline),
            missing=missing,
            totals={name: sum(hours) for name, hours in timeline.counts.items()},
        )

    async def timeline_image(self, request: Request) -> Response:
        known, _, _ = await self._schedulers()
        svg = timeline_svg(await self.model.timeline(known))
        return Response(str(svg), media_type="image/svg+xml", headers=_SECURITY_HEADERS)

    async def schedule_page(self, request: Request) -> Response:
        scheduler, name = _names(request)
        query = _Query(request)
        page = query.whole("page", 1, 200, default=1)
        ops = self._ops(scheduler)
        state = await ops.get_schedule(name)
        fires = await ops.preview(name, count=10)
        try:
            history, more = await self.model.history(scheduler, name, page, _HISTORY_PAGE)
            history_missing = None
        except UsageError as exc:  # a backend without a history (AWS)
            history, more, history_missing = [], False, str(exc)
        try:
            letters = await self.model.dead_letters(scheduler, name)
            letters_missing = None
        except ReventlessError as exc:
            letters, letters_missing = [], str(exc)
        last, lateness = await self.model.last_outcome(scheduler, name)
        return self.render(
            request,
            "schedule.html",
            scheduler=scheduler,
            state=state,
            fires=fires,
            history=history,
            page_number=page,
            more=more,
            letters=letters,
            letters_missing=letters_missing,
            history_missing=history_missing,
            last=last,
            lateness=lateness,
            now=self.model.now(),
            status=_status(state, self.model),
            rate_words=rate_words(state.schedule.rate),
            expression=rate_text(state.schedule.rate),
        )

    async def reactions_page(self, request: Request) -> Response:
        views, missing = await self.model.reactions()
        return self.render(request, "reactions.html", views=views, missing=missing)

    async def healthz(self, request: Request) -> Response:
        self.guard.check_read(request)
        query = _Query(request)
        max_late = query.seconds("max_late", self.model.late_after)
        max_lag = query.seconds("max_lag", self.max_lag)
        try:
            health = await check(
                self.model.provider,
                max_late=max_late,
                max_lag=max_lag,
                schedulers=self.model.named,
            )
        except BackendUnavailableError as exc:
            health = _unreachable(exc)
        body = msgspec.to_builtins(health)
        body["summary"] = health.summary()
        return JSONResponse(body, 200 if health.ok else 503, headers={"cache-control": "no-store"})

    async def metrics(self, request: Request) -> Response:
        self.guard.check_read(request)
        try:
            health = await check(
                self.model.provider,
                max_late=self.model.late_after,
                max_lag=self.max_lag,
                schedulers=self.model.named,
            )
            views, _ = await self.model.reactions()
        except BackendUnavailableError as exc:
            # A scrape that fails is what Prometheus alerts on (``up == 0``).
            return Response(f"{exc}\n", 503, media_type="text/plain")
        return Response(
            metrics_text(health, views),
            media_type="text/plain; version=0.0.4",
            headers={"cache-control": "no-store"},
        )

    # -- sessions ------------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        self.guard.check_host(request)
        return self.render(request, "login.html", back=_back(request))

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        sid = self.guard.login(request, form.get("token", ""))
        response = RedirectResponse(_safe_back(form.get("back")), 303)
        response.set_cookie(
            SESSION_COOKIE, sid, httponly=True, samesite="strict", path="/", secure=False
        )
        _flash(response, "signed in: actions are enabled")
        return response

    async def logout(self, request: Request) -> Response:
        self.guard.check_same_origin(request)
        self.guard.logout(request)
        response = RedirectResponse("/schedules", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- actions -------------------------------------------------------------------------------

    def _ops(self, scheduler: str) -> SchedulerOperations:
        return SchedulerOperations(scheduler, self.model.publisher, self.model.provider.clock)

    async def _act(
        self, request: Request, back: str, act: Callable[[dict[str, str]], Awaitable[str]]
    ) -> Response:
        form = await _form(request)
        self.guard.check_action(request, form.get("csrf"))
        try:
            said = await act(form)
        except ScheduleNotFoundError as exc:
            return self.error_page(request, 404, str(exc))
        except ReactionNotFoundError as exc:
            return self.error_page(request, 404, str(exc))
        except BackendUnavailableError as exc:
            return self.error_page(request, 503, f"not done: {exc}")
        except ReventlessError as exc:
            return self.error_page(request, 400, f"not done: {exc}")
        response = RedirectResponse(back, 303)
        _flash(response, said)
        return response

    async def schedule_action(self, request: Request) -> Response:
        scheduler, name = _names(request)
        action = request.path_params["action"]
        if action not in ("pause", "resume", "trigger", "backfill"):
            raise HTTPException(404, f"no action {action!r}")
        back = f"/schedules/{quote(scheduler, safe='')}/{quote(name, safe='')}"
        ops = self._ops(scheduler)

        async def act(form: dict[str, str]) -> str:
            reason = form.get("reason", "").strip() or None
            by = form.get("by", "").strip() or "console"
            if action == "pause":
                if reason is None:
                    raise Refusal(400, "pause: a reason is required (say why)")
                await ops.pause_schedule(name, reason=reason, by=by)
                return f"paused {name}: {reason}"
            if action == "resume":
                done = await ops.resume_schedule(name, reason=reason, by=by)
                return f"resumed {name}" if done is not None else f"{name} completed instead"
            if action == "trigger":
                fire = await ops.trigger_schedule(name, reason=reason, by=by)
                return f"triggered {name}: fire {fire}"
            start = _instant(form, "start")
            end = _instant(form, "end")
            queued = await ops.backfill(name, start, end, reason=reason, by=by)
            return f"backfilled {name}: {len(queued)} fires queued"

        return await self._act(request, back, act)

    async def redrive(self, request: Request) -> Response:
        scheduler = _name(request.path_params["scheduler"], "scheduler")
        ops = self._ops(scheduler)

        async def act(form: dict[str, str]) -> str:
            fire = form.get("fire_id") or None
            schedule = form.get("schedule") or None
            ids = await ops.redrive(
                schedule=None if fire else schedule,
                fire_ids=[fire] if fire else None,
                reason=form.get("reason", "").strip() or None,
                by=form.get("by", "").strip() or "console",
            )
            return f"redriven: {len(ids)} dead letters sent again"

        form_back = request.query_params.get("back")
        return await self._act(request, _safe_back(form_back), act)

    async def resume_reaction(self, request: Request) -> Response:
        name = request.path_params["name"]
        provider = self.model.provider
        if not isinstance(provider, ProvidesReactions):
            raise HTTPException(404, "this provider runs no reactions")

        async def act(form: dict[str, str]) -> str:
            skip = form.get("skip") == "1"
            reason = form.get("reason", "").strip() or None
            by = form.get("by", "").strip() or "console"
            if reason is None:
                raise Refusal(400, "resume: a reason is required (say why)")
            position = await provider.reactions().resume(name, skip=skip, reason=reason, by=by)
            how = "skipping the event it stopped at" if skip else "retrying the event"
            return f"reaction {name} resumes after position {position}, {how}"

        return await self._act(request, "/reactions", act)


class _Query:
    """Query parameters, each checked; a bad one is a 400 naming it."""

    def __init__(self, request: Request) -> None:
        self.params = request.query_params
        for key in self.params:
            if len(self.params.getlist(key)) > 1:
                raise HTTPException(400, f"{key}: given more than once")

    def text(self, key: str) -> str:
        value = self.params.get(key, "")
        if not _TEXT.fullmatch(value):
            raise HTTPException(400, f"{key}: up to 64 printable characters")
        return value

    def choice(self, key: str, allowed: list[str], default: str = "") -> str:
        value = self.params.get(key, default)
        if value not in allowed:
            shown = ", ".join(a for a in allowed if a) or "none"
            raise HTTPException(400, f"{key}: {value[:64]!r} is not one of: {shown}")
        return value

    def whole(self, key: str, low: int, high: int, *, default: int) -> int:
        value = self.params.get(key)
        if value is None:
            return default
        if not value.isdigit() or not low <= int(value) <= high:
            raise HTTPException(400, f"{key}: a whole number from {low} to {high}")
        return int(value)

    def seconds(self, key: str, default: timedelta) -> timedelta:
        value = self.params.get(key)
        if value is None:
            return default
        if not value.isdigit() or not 0 <= int(value) <= 30 * 86400:
            raise HTTPException(400, f"{key}: whole seconds from 0 to {30 * 86400}")
        return timedelta(seconds=int(value))


def _name(text: str, what: str) -> str:
    try:
        return check_name(text)
    except ReventlessError:
        raise HTTPException(404, f"no such {what}: not a valid name") from None


def _names(request: Request) -> tuple[str, str]:
    return (
        _name(request.path_params["scheduler"], "scheduler"),
        _name(request.path_params["name"], "schedule"),
    )


def _status(state: Any, model: ConsoleModel) -> str:
    from reventless.web._model import status_of

    return status_of(state, model.now(), model.late_after)


def _with(request: Request, **changes: str | None) -> str:
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    return f"{request.url.path}?{query}"


def _back(request: Request) -> str:
    return _safe_back(request.query_params.get("back"))


def _safe_back(value: str | None) -> str:
    """A local path to go back to; anything else (another site) is the schedules page."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/schedules"


def _read_flash(request: Request) -> str | None:
    value = request.cookies.get(_FLASH)
    return None if value is None else unquote(value)[:400]


def _flash(response: Response, text: str) -> None:
    response.set_cookie(_FLASH, quote(text[:400]), httponly=True, samesite="strict", path="/")


async def _form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise HTTPException(413, "the form is too large")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form is not UTF-8 form data") from None
    return {key: values[0] for key, values in fields.items()}


def _instant(form: dict[str, str], key: str) -> datetime:
    """A backfill bound: ISO 8601 with an offset, or a browser's local input read as UTC."""
    text = form.get(key, "").strip()
    allowed = "an ISO 8601 instant, e.g. 2026-12-01T08:00Z (no offset: UTC)"
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(key, text[:64], allowed) from None
    if value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _unreachable(exc: BackendUnavailableError) -> Health:
    """The health of a store the console cannot reach: one problem, ``store_unreachable``."""
    return Health(
        ok=False,
        checked_at=datetime.now(UTC),
        problems=[
            Problem(
                kind="store_unreachable",
                subject="store",
                message=f"the store cannot be reached: {exc}",
            )
        ],
    )
