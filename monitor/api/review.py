"""The human review page, `/review` (CONTRACT section 4: the `review` role; `admin` may too).

Server-rendered (Jinja2, every value escaped), plain HTML forms that work without JavaScript,
and a little inline script for the keyboard shortcuts. Per feature, the queue is the latest
cycle's sample (or `?cycle=`) less what a human labelled or somebody flagged; one item at a
time is expanded with its input, output, evidence and judge verdicts, the rest are listed.

Sign-in: a reviewer pastes a `review` or `admin` token once; the page then keeps a signed,
HttpOnly, SameSite=Strict session cookie (`monitor.api.auth`). A bearer token works too.

Cross-site request forgery: every form carries a token derived by HMAC from the caller's
credential (the session cookie, or the bearer token) and the daemon's session secret, and every
POST checks it (403 when missing or wrong). The sign-in form, which has no session yet, is
bound the same way to a random pre-session cookie.

A label is stored with source `human:<name>` through `insert_labels` (the same reviewer
labelling again replaces their label), `ts` now, and `review_seconds`, the time from the
page's render to the submit, carried in a signed hidden field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, Security
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from monitor.api.auth import SESSION_COOKIE, Principal, close_session, open_session, require
from monitor.decide.schedule import cron
from monitor.errors import ConfigError, InputError
from monitor.records import format_ts, parse_ts, validate_label
from monitor.store import review_queries as rq
from monitor.store.cycle_queries import feature_names

if TYPE_CHECKING:
    from monitor.daemon.services import Services

__all__ = ["SESSION_MAX_AGE", "csrf_token", "router"]

SESSION_MAX_AGE = 12 * 3600  # a working day; then the reviewer pastes the token again
LOGIN_COOKIE = "aiqm_login"  # the pre-session nonce that binds the sign-in form
ACTIONS = ("pass", "fail", "unsure", "flag")
MAX_REASON_CHARS = 10_000
RECENT_CYCLES = 5  # the latest cycle and the earlier ones still offered on the index

_TEMPLATES = Path(__file__).parent / "templates"
_bearer = HTTPBearer(auto_error=False, description="a review (or admin) token")


# --------------------------------------------------------------------------- signing


def _mac(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\x00".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def csrf_token(secret: bytes, credential: str) -> str:
    """The CSRF token of a credential (the session cookie's value, or a bearer token)."""
    return _mac(secret, "csrf", credential)


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def _rendered_stamp(secret: bytes, feature: str, output_id: str, at: datetime) -> str:
    """A signed note of when an item's form was rendered: `<epoch ms>.<mac>`."""
    millis = str(int(at.timestamp() * 1000))
    return f"{millis}.{_mac(secret, 'rendered', feature, output_id, millis)[:32]}"


def _review_seconds(secret: bytes, feature: str, output_id: str, stamp: str, now: datetime) -> float | None:
    """Seconds since the signed render stamp; None when it is missing, forged or in the future."""
    millis, _, mac = stamp.partition(".")
    if not millis.isdigit() or len(millis) > 15:
        return None
    if not _same(_mac(secret, "rendered", feature, output_id, millis)[:32], mac):
        return None
    seconds = now.timestamp() - int(millis) / 1000
    return round(seconds, 3) if seconds >= 0 else None


def _source_name(name: str) -> str:
    """A principal's name as the `<name>` of a `human:<name>` source (no blanks, at most 120 chars)."""
    return re.sub(r"[\s\x00]+", "_", name.strip())[:120] or "reviewer"


# --------------------------------------------------------------------------- templates


def _when(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%a} {utc.day} {utc:%b %Y, %H:%M} UTC"


def _day(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return f"{utc:%a} {utc.day} {utc:%b}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _show(value: Any) -> str:
    """An input, output or metadata value as text: a string as it is, JSON pretty-printed."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _preview(value: Any, chars: int = 90) -> str:
    text = " ".join(_show(value).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True
    )
    env.filters.update(when=_when, day=_day, iso=_iso, show=_show, preview=_preview, number=_number)
    return env


# --------------------------------------------------------------------------- the page's state


@dataclass(frozen=True)
class _Caller:
    principal: Principal
    credential: str


class _Refused(Exception):
    """A request the page refuses: shown as a page with the status and what to do."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class _Form:
    """The fields of a submitted verdict form."""

    output_id: str
    action: str
    reason: str
    rendered: str
    cycle: str
    origin: str


@dataclass(frozen=True)
class _Attempt:
    """A submit that failed validation: shown again with its error, reason and render stamp."""

    output_id: str
    action: str
    reason: str
    rendered: str
    error: str


_check = require("review")


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> _Caller | None:
    """The signed-in reviewer; None (the page offers the sign-in) when there is no credential."""
    try:
        principal = await _check(request, credentials)
    except HTTPException as exc:
        if exc.status_code == 401 and credentials is None:
            return None
        raise
    if credentials is not None:
        return _Caller(principal, credentials.credentials)
    return _Caller(principal, request.cookies.get(SESSION_COOKIE, ""))


Caller = Annotated[_Caller | None, Depends(_caller)]


def router(services: Services) -> APIRouter:
    """The review page's routes; `create_app` mounts them under `/review`."""
    routes = APIRouter(include_in_schema=False)
    env = _environment()
    secret = services.session_secret

    def base_of(request: Request) -> str:
        return request.url_for("review_index").path.rstrip("/")

    def render(
        request: Request,
        template: str,
        context: Mapping[str, Any],
        who: _Caller | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = env.get_template(template).render(
            base=base_of(request),
            nonce=nonce,
            principal=who.principal if who else None,
            csrf=csrf_token(secret, who.credential) if who else "",
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        _secure(response, nonce)
        return response

    def refused(request: Request, who: _Caller | None, exc: _Refused) -> HTMLResponse:
        context = {"status": exc.status_code, "message": exc.message}
        return render(request, "refused.html", context, who, exc.status_code)

    def to_login(request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{base_of(request)}/login?{urlencode({'next': target})}", status_code=303)

    def check_csrf(who: _Caller, given: str) -> None:
        if not given or not _same(csrf_token(secret, who.credential), given):
            raise _Refused(403, "The form's CSRF token is missing or wrong: reload the page and try again.")

    def known_features() -> list[str]:
        with services.engine.connect() as conn:
            stored = feature_names(conn)
        return sorted({*stored, *services.settings.features})

    def next_cycle(feature: str) -> str:
        try:
            moment = cron(services.settings.feature(feature).schedule).get_next_fire_time(
                None, services.clock()
            )
        except ConfigError:
            return "its schedule (which is not valid)"
        return _when(moment) if moment is not None else "no date: its schedule never fires again"

    # ----------------------------------------------------------------------- sign-in

    @routes.get("/login", response_class=HTMLResponse)
    def login_form(
        request: Request, next_url: Annotated[str, Query(alias="next", max_length=2000)] = ""
    ) -> HTMLResponse:
        return login_page(request, next_url, "", 200)

    def login_page(request: Request, next_url: str, error: str, status_code: int) -> HTMLResponse:
        nonce_value = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = render(
            request,
            "login.html",
            {"error": error, "next": next_url, "login_csrf": _mac(secret, "login", nonce_value)},
            status_code=status_code,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce_value,
            max_age=3600,
            path=base_of(request) or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @routes.post("/login", response_model=None)
    def login(
        request: Request,
        token: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
        next_url: Annotated[str, Form(alias="next")] = "",
    ) -> Response:
        nonce_value = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce_value or not csrf or not _same(_mac(secret, "login", nonce_value), csrf):
            return login_page(
                request, next_url, "The sign-in form expired (or cookies are off): please try again.", 403
            )
        principal = services.tokens.lookup(token.strip())
        if principal is None:
            return login_page(request, next_url, "That token is not known (or it was revoked).", 401)
        if not principal.allows("review"):
            return login_page(
                request,
                next_url,
                f"The token {principal.name!r} has the {principal.role} role; "
                "reviewing needs a review or admin token.",
                403,
            )
        base = base_of(request)
        target = next_url if next_url.startswith(base + "/") or next_url == base else base
        if target.startswith("//") or "\\" in target:
            target = base
        response = RedirectResponse(target or "/", status_code=303)
        open_session(response, principal, secret, SESSION_MAX_AGE, secure=request.url.scheme == "https")
        response.delete_cookie(LOGIN_COOKIE, path=base or "/", httponly=True, samesite="strict")
        return response

    @routes.post("/logout", response_model=None)
    def logout(request: Request, who: Caller, csrf: Annotated[str, Form()] = "") -> Response:
        if who is not None:
            try:
                check_csrf(who, csrf)
            except _Refused as exc:
                return refused(request, who, exc)
        response = RedirectResponse(f"{base_of(request)}/login", status_code=303)
        close_session(response)
        return response

    # ----------------------------------------------------------------------- pages

    @routes.get("", response_class=HTMLResponse, response_model=None, name="review_index")
    def index(request: Request, who: Caller) -> Response:
        if who is None:
            return to_login(request)
        rows = []
        with services.engine.connect() as conn:
            flagged = rq.open_flag_counts(conn)
            for feature in known_features():
                recent = rq.progress(conn, feature, rq.cycle_times(conn, feature, RECENT_CYCLES))
                rows.append(
                    {
                        "feature": feature,
                        "owner": services.settings.owner_of(feature),
                        "latest": recent[0] if recent else None,
                        "older": [p for p in recent[1:] if p.left > 0],
                        "flagged": flagged.get(feature, 0),
                        "next_cycle": next_cycle(feature),
                    }
                )
        return render(request, "index.html", {"rows": rows}, who)

    def queue_page(
        request: Request,
        who: _Caller,
        feature: str,
        cycle_at: datetime | None,
        current_id: str | None,
        attempt: _Attempt | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        with services.engine.connect() as conn:
            times = rq.cycle_times(conn, feature, RECENT_CYCLES)
            if cycle_at is None and times:
                cycle_at = times[0]
            if cycle_at is not None and cycle_at not in times:
                times = [*times, cycle_at]
            recent = rq.progress(conn, feature, times)
            items = rq.queue(conn, feature, cycle_at) if cycle_at is not None else []
            flagged = rq.open_flag_counts(conn).get(feature, 0)
        this = next((p for p in recent if p.cycle_at == cycle_at), None)
        index = next((i for i, item in enumerate(items) if item.output_id == current_id), 0)
        current = items[index] if items else None
        now = services.clock()
        context = {
            "feature": feature,
            "owner": services.settings.owner_of(feature),
            "cycle_at": cycle_at,
            "progress": this,
            "latest": times[0] if times else None,
            "others": [p for p in recent if p.cycle_at != cycle_at],
            "items": items,
            "index": index,
            "current": current,
            "previous_id": items[index - 1].output_id if current is not None and index > 0 else None,
            "next_id": items[index + 1].output_id if current is not None and index + 1 < len(items) else None,
            "flagged": flagged,
            "next_cycle": next_cycle(feature),
            "saved": request.query_params.get("saved", "") if attempt is None else "",
            "attempt": attempt,
            "armed": attempt.action if attempt else "",
            "rendered": (
                attempt.rendered
                if attempt
                else _rendered_stamp(secret, feature, current.output_id, now)
                if current
                else ""
            ),
        }
        return render(request, "feature.html", context, who, status_code)

    def parse_cycle(value: str | None) -> datetime | None:
        if not value:
            return None
        try:
            return parse_ts(value, "cycle")
        except InputError:
            raise _Refused(400, "The cycle must be a time like 2026-03-02T06:00:00Z.") from None

    def require_feature(feature: str) -> None:
        if feature not in known_features():
            raise _Refused(404, f"There is no feature named {feature!r}.")

    @routes.get("/{feature}", response_class=HTMLResponse, response_model=None)
    def feature_queue(
        request: Request,
        feature: str,
        who: Caller,
        cycle: Annotated[str | None, Query(max_length=40)] = None,
        item: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        if who is None:
            return to_login(request)
        try:
            require_feature(feature)
            return queue_page(request, who, feature, parse_cycle(cycle), item)
        except _Refused as exc:
            return refused(request, who, exc)

    @routes.get("/{feature}/flagged", response_class=HTMLResponse, response_model=None)
    def flagged_list(request: Request, feature: str, who: Caller) -> Response:
        if who is None:
            return to_login(request)
        try:
            require_feature(feature)
            return flagged_page(request, who, feature)
        except _Refused as exc:
            return refused(request, who, exc)

    def flagged_page(
        request: Request,
        who: _Caller,
        feature: str,
        attempt: _Attempt | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        with services.engine.connect() as conn:
            entries = rq.flagged_items(conn, feature)
        now = services.clock()
        stamps = {
            item.output_id: _rendered_stamp(secret, feature, item.output_id, now) for item, _ in entries
        }
        if attempt is not None:
            stamps[attempt.output_id] = attempt.rendered
        context = {
            "feature": feature,
            "owner": services.settings.owner_of(feature),
            "entries": entries,
            "stamps": stamps,
            "attempt": attempt,
            "saved": request.query_params.get("saved", "") if attempt is None else "",
        }
        return render(request, "flagged.html", context, who, status_code)

    # ----------------------------------------------------------------------- the verdict

    @routes.post("/{feature}", response_model=None)
    def submit(
        request: Request,
        feature: str,
        who: Caller,
        csrf: Annotated[str, Form()] = "",
        output_id: Annotated[str, Form()] = "",
        action: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        rendered: Annotated[str, Form()] = "",
        cycle: Annotated[str, Form()] = "",
        origin: Annotated[str, Form()] = "queue",
    ) -> Response:
        if who is None:  # signed out meanwhile (the session lasts a working day)
            return RedirectResponse(
                f"{base_of(request)}/login?{urlencode({'next': request.url.path})}", status_code=303
            )
        form = _Form(output_id, action, reason, rendered, cycle, origin)
        try:
            check_csrf(who, csrf)
            require_feature(feature)
            return verdict(request, who, feature, form)
        except _Refused as exc:
            return refused(request, who, exc)

    def verdict(request: Request, who: _Caller, feature: str, form: _Form) -> Response:
        """Validate and store one verdict; then on to the next item (or the form again)."""
        output_id, action = form.output_id, form.action
        now = services.clock()
        with services.engine.connect() as conn:
            item = rq.review_item(conn, feature, output_id)
            order = [i.output_id for i in rq.queue(conn, feature, item.cycle_at)] if item else []
        if item is None:
            raise _Refused(404, f"{output_id!r} was not drawn for review in {feature!r}.")
        cycle_at = parse_cycle(form.cycle) or item.cycle_at
        text = form.reason.strip()

        def again(error: str) -> HTMLResponse:
            attempt = _Attempt(output_id, action, form.reason, form.rendered, error)
            if form.origin == "flagged":
                return flagged_page(request, who, feature, attempt, 422)
            return queue_page(request, who, feature, cycle_at, output_id, attempt, 422)

        if action not in ACTIONS:
            return again("Choose pass, fail, unsure or flag.")
        if action != "pass" and not text:
            what = "flagging it for the owner" if action == "flag" else f"marking it {action}"
            return again(f"A reason is required for {what}: say what is wrong or unclear.")
        if len(text) > MAX_REASON_CHARS:
            return again(f"The reason is too long ({len(text)} characters; at most {MAX_REASON_CHARS}).")
        seconds = _review_seconds(secret, feature, output_id, form.rendered, now)
        with services.engine.begin() as conn:
            if action == "flag":
                rq.add_flag(conn, feature, output_id, text, who.principal.name, now)
            else:
                label = validate_label(
                    {
                        "output_id": output_id,
                        "feature": feature,
                        "verdict": action,
                        "source": f"human:{_source_name(who.principal.name)}",
                        "reason": text or None,
                        "ts": format_ts(now),
                    }
                )
                rq.record_review(conn, label, seconds, now)
        base = f"{base_of(request)}/{_path(feature)}"
        if form.origin == "flagged":
            return RedirectResponse(f"{base}/flagged?{urlencode({'saved': action})}", status_code=303)
        rest = [i for i in order if i != output_id]
        position = order.index(output_id) if output_id in order else 0
        following = rest[position] if position < len(rest) else (rest[0] if rest else None)
        query = {"cycle": _iso(cycle_at), "saved": action}
        if following is not None:
            query["item"] = following
        return RedirectResponse(f"{base}?{urlencode(query)}", status_code=303)

    return routes


def _path(feature: str) -> str:
    return quote(feature, safe="")


def _secure(response: Response, nonce: str) -> None:
    """Headers every page carries: a strict Content-Security-Policy (scripts and styles only with
    this response's nonce), no framing, no sniffing, no caching, no referrer."""
    headers: dict[str, str] = {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    response.headers.update(headers)
