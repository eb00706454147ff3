"""A reviewer's verdict on one item: pass, fail, unsure, or flag it for the feature's owner.

A label is stored with source `human:<name>` through `insert_labels` (the same reviewer
labelling again replaces their label), `ts` now, and `review_seconds`, the time from the
page's render to the submit, carried in a signed hidden field. After a verdict the reviewer
goes on to the next item; a verdict that fails validation shows the form again with its error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from monitor.api.review.pages import Attempt, ReviewPages, parse_cycle
from monitor.api.review.rendering import iso
from monitor.api.review.session import Base, Caller, CallerOrNone, Refused, check_csrf
from monitor.api.review.signing import review_seconds
from monitor.records import LabelRecord, format_ts, validate_label
from monitor.store import review_queries as rq

__all__ = ["ACTIONS", "MAX_REASON_CHARS", "VerdictForm", "Verdicts", "following", "problem", "source_name"]

ACTIONS = ("pass", "fail", "unsure", "flag")
MAX_REASON_CHARS = 10_000


@dataclass(frozen=True)
class VerdictForm:
    """The fields of a submitted verdict form."""

    output_id: str
    action: str
    reason: str
    rendered: str
    cycle: str
    origin: str


def problem(action: str, reason: str) -> str | None:
    """What is wrong with a verdict (its reason already stripped), for the reviewer; None if nothing."""
    if action not in ACTIONS:
        return "Choose pass, fail, unsure or flag."
    if action != "pass" and not reason:
        what = "flagging it for the owner" if action == "flag" else f"marking it {action}"
        return f"A reason is required for {what}: say what is wrong or unclear."
    if len(reason) > MAX_REASON_CHARS:
        return f"The reason is too long ({len(reason)} characters; at most {MAX_REASON_CHARS})."
    return None


def source_name(name: str) -> str:
    """A principal's name as the `<name>` of a `human:<name>` source (no blanks, at most 120 chars)."""
    return re.sub(r"[\s\x00]+", "_", name.strip())[:120] or "reviewer"


def human_label(
    feature: str, output_id: str, verdict: str, reason: str, reviewer: str, now: datetime
) -> LabelRecord:
    """The label a reviewer's verdict stores."""
    return validate_label(
        {
            "output_id": output_id,
            "feature": feature,
            "verdict": verdict,
            "source": f"human:{source_name(reviewer)}",
            "reason": reason or None,
            "ts": format_ts(now),
        }
    )


def following(order: Sequence[str], output_id: str) -> str | None:
    """The item after `output_id` in the queue once it has left it (wrapping to the first)."""
    rest = [i for i in order if i != output_id]
    position = order.index(output_id) if output_id in order else 0
    return rest[position] if position < len(rest) else (rest[0] if rest else None)


class Verdicts:
    """Takes verdicts: checks the form, stores the label or the flag, and moves on."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime], pages: ReviewPages) -> None:
        self.engine = engine
        self.clock = clock
        self.pages = pages
        self.renderer = pages.renderer
        self.secret = pages.renderer.secret

    def submit(
        self,
        request: Request,
        feature: str,
        base: Base,
        who: CallerOrNone,
        csrf: Annotated[str, Form()] = "",
        output_id: Annotated[str, Form()] = "",
        action: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        rendered: Annotated[str, Form()] = "",
        cycle: Annotated[str, Form()] = "",
        origin: Annotated[str, Form()] = "queue",
    ) -> Response:
        """POST a verdict form."""
        if who is None:  # signed out meanwhile (the session lasts a working day)
            return RedirectResponse(f"{base}/login?{urlencode({'next': request.url.path})}", status_code=303)
        form = VerdictForm(output_id, action, reason, rendered, cycle, origin)
        try:
            check_csrf(self.secret, who, csrf)
            self.pages.require_feature(feature)
            return self.verdict(request, base, who, feature, form)
        except Refused as exc:
            return self.renderer.refused(base, who, exc)

    def verdict(self, request: Request, base: str, who: Caller, feature: str, form: VerdictForm) -> Response:
        """Validate and store one verdict; then on to the next item (or the form again)."""
        output_id, action = form.output_id, form.action
        now = self.clock()
        with self.engine.connect() as conn:
            item = rq.review_item(conn, feature, output_id)
            order = [i.output_id for i in rq.queue(conn, feature, item.cycle_at)] if item else []
        if item is None:
            raise Refused(404, f"{output_id!r} was not drawn for review in {feature!r}.")
        cycle_at = parse_cycle(form.cycle) or item.cycle_at
        text = form.reason.strip()
        error = problem(action, text)
        if error is not None:
            return self.again(request, base, who, feature, form, cycle_at, error)
        seconds = review_seconds(self.secret, feature, output_id, form.rendered, now)
        with self.engine.begin() as conn:
            if action == "flag":
                rq.add_flag(conn, feature, output_id, text, who.principal.name, now)
            else:
                label = human_label(feature, output_id, action, text, who.principal.name, now)
                rq.record_review(conn, label, seconds, now)
        page = f"{base}/{quote(feature, safe='')}"
        if form.origin == "flagged":
            return RedirectResponse(f"{page}/flagged?{urlencode({'saved': action})}", status_code=303)
        query = {"cycle": iso(cycle_at), "saved": action}
        after = following(order, output_id)
        if after is not None:
            query["item"] = after
        return RedirectResponse(f"{page}?{urlencode(query)}", status_code=303)

    def again(
        self,
        request: Request,
        base: str,
        who: Caller,
        feature: str,
        form: VerdictForm,
        cycle_at: datetime,
        error: str,
    ) -> HTMLResponse:
        """The page the form came from, again (422), with the error and what was typed."""
        attempt = Attempt(form.output_id, form.action, form.reason, form.rendered, error)
        if form.origin == "flagged":
            return self.pages.flagged_page(request, base, who, feature, attempt, 422)
        return self.pages.queue_page(request, base, who, feature, cycle_at, form.output_id, attempt, 422)
