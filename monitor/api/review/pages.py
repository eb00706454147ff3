"""The review page's views: the index of features, a feature's queue, its flagged list.

Per feature, the queue is the latest cycle's sample (or `?cycle=`) less what a human labelled
or somebody flagged; one item at a time is expanded with its input, output, evidence and judge
verdicts, the rest are listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine

from monitor.api.review.rendering import Renderer, when
from monitor.api.review.session import Base, Caller, CallerOrNone, Refused, to_login
from monitor.api.review.signing import rendered_stamp
from monitor.config import Settings
from monitor.decide.schedule import cron
from monitor.errors import ConfigError, InputError
from monitor.records import parse_ts
from monitor.reporting.label_budget import last_answer
from monitor.store import review_queries as rq
from monitor.store.cycle_queries import feature_names

__all__ = ["RECENT_CYCLES", "Attempt", "ReviewPages", "parse_cycle"]

RECENT_CYCLES = 5  # the latest cycle and the earlier ones still offered on the index


@dataclass(frozen=True)
class Attempt:
    """A submit that failed validation: shown again with its error, reason and render stamp."""

    output_id: str
    action: str
    reason: str
    rendered: str
    error: str


def parse_cycle(value: str | None) -> datetime | None:
    """A `cycle` parameter as a time; None when absent; refused (400) when it is not a time."""
    if not value:
        return None
    try:
        return parse_ts(value, "cycle")
    except InputError:
        raise Refused(400, "The cycle must be a time like 2026-03-02T06:00:00Z.") from None


class ReviewPages:
    """The pages a reviewer reads, from the store, the settings and the clock."""

    def __init__(
        self, engine: Engine, settings: Settings, clock: Callable[[], datetime], renderer: Renderer
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.renderer = renderer

    # ----------------------------------------------------------------------- what pages share

    def known_features(self) -> list[str]:
        """The features in the store and in the settings, sorted."""
        with self.engine.connect() as conn:
            stored = feature_names(conn)
        return sorted({*stored, *self.settings.features})

    def require_feature(self, feature: str) -> None:
        if feature not in self.known_features():
            raise Refused(404, f"There is no feature named {feature!r}.")

    def next_cycle(self, feature: str) -> str:
        """When the feature's next cycle runs, in words."""
        try:
            moment = cron(self.settings.feature(feature).schedule).get_next_fire_time(None, self.clock())
        except ConfigError:
            return "its schedule (which is not valid)"
        return when(moment) if moment is not None else "no date: its schedule never fires again"

    # ----------------------------------------------------------------------- routes

    def index(self, request: Request, base: Base, who: CallerOrNone) -> Response:
        """GET the index: each feature's progress through its recent cycles, flags, next cycle, and
        the human labels its last answer used."""
        if who is None:
            return to_login(request, base)
        rows = []
        with self.engine.connect() as conn:
            flagged = rq.open_flag_counts(conn)
            for feature in self.known_features():
                recent = rq.progress(conn, feature, rq.cycle_times(conn, feature, RECENT_CYCLES))
                rows.append(
                    {
                        "feature": feature,
                        "owner": self.settings.owner_of(feature),
                        "latest": recent[0] if recent else None,
                        "older": [p for p in recent[1:] if p.left > 0],
                        "flagged": flagged.get(feature, 0),
                        "next_cycle": self.next_cycle(feature),
                        "answer": last_answer(conn, feature),
                    }
                )
        return self.renderer.page(base, "index.html", {"rows": rows}, who)

    def feature_queue(
        self,
        request: Request,
        feature: str,
        base: Base,
        who: CallerOrNone,
        cycle: Annotated[str | None, Query(max_length=40)] = None,
        item: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        """GET a feature's queue (`item` expanded; the latest cycle unless `cycle` says)."""
        if who is None:
            return to_login(request, base)
        try:
            self.require_feature(feature)
            return self.queue_page(request, base, who, feature, parse_cycle(cycle), item)
        except Refused as exc:
            return self.renderer.refused(base, who, exc)

    def flagged_list(self, request: Request, feature: str, base: Base, who: CallerOrNone) -> Response:
        """GET the feature's flagged outputs, for its owner."""
        if who is None:
            return to_login(request, base)
        try:
            self.require_feature(feature)
            return self.flagged_page(request, base, who, feature)
        except Refused as exc:
            return self.renderer.refused(base, who, exc)

    # ----------------------------------------------------------------------- the two lists

    def queue_page(
        self,
        request: Request,
        base: str,
        who: Caller,
        feature: str,
        cycle_at: datetime | None,
        current_id: str | None,
        attempt: Attempt | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        """The queue of `cycle_at` (default: the latest cycle) with `current_id` expanded, and the
        human labels the last answer used with how many of this week's sample still wait."""
        with self.engine.connect() as conn:
            times = rq.cycle_times(conn, feature, RECENT_CYCLES)
            if cycle_at is None and times:
                cycle_at = times[0]
            if cycle_at is not None and cycle_at not in times:
                times = [*times, cycle_at]
            recent = rq.progress(conn, feature, times)
            items = rq.queue(conn, feature, cycle_at) if cycle_at is not None else []
            flagged = rq.open_flag_counts(conn).get(feature, 0)
            answer = last_answer(conn, feature)
        context = {
            "feature": feature,
            "owner": self.settings.owner_of(feature),
            "cycle_at": cycle_at,
            "progress": next((p for p in recent if p.cycle_at == cycle_at), None),
            "latest": times[0] if times else None,
            "others": [p for p in recent if p.cycle_at != cycle_at],
            "answer": answer,
            "this_week": recent[0] if times else None,
            "flagged": flagged,
            "next_cycle": self.next_cycle(feature),
            "saved": request.query_params.get("saved", "") if attempt is None else "",
            "attempt": attempt,
            "armed": attempt.action if attempt else "",
            **self._position(feature, items, current_id, attempt),
        }
        return self.renderer.page(base, "feature.html", context, who, status_code)

    def _position(
        self, feature: str, items: list[rq.ReviewItem], current_id: str | None, attempt: Attempt | None
    ) -> dict[str, Any]:
        """The expanded item, its neighbours, and the render stamp of its form."""
        index = next((i for i, item in enumerate(items) if item.output_id == current_id), 0)
        current = items[index] if items else None
        stamp = ""
        if attempt:
            stamp = attempt.rendered
        elif current:
            stamp = rendered_stamp(self.renderer.secret, feature, current.output_id, self.clock())
        return {
            "items": items,
            "index": index,
            "current": current,
            "previous_id": items[index - 1].output_id if current is not None and index > 0 else None,
            "next_id": items[index + 1].output_id if current is not None and index + 1 < len(items) else None,
            "rendered": stamp,
        }

    def flagged_page(
        self,
        request: Request,
        base: str,
        who: Caller,
        feature: str,
        attempt: Attempt | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        """The feature's flagged outputs, each with its own form (and render stamp)."""
        with self.engine.connect() as conn:
            entries = rq.flagged_items(conn, feature)
        now = self.clock()
        stamps = {
            item.output_id: rendered_stamp(self.renderer.secret, feature, item.output_id, now)
            for item, _ in entries
        }
        if attempt is not None:
            stamps[attempt.output_id] = attempt.rendered
        context = {
            "feature": feature,
            "owner": self.settings.owner_of(feature),
            "entries": entries,
            "stamps": stamps,
            "attempt": attempt,
            "saved": request.query_params.get("saved", "") if attempt is None else "",
        }
        return self.renderer.page(base, "flagged.html", context, who, status_code)
