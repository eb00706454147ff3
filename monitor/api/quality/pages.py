"""The quality page's views: every feature at a glance, and one feature's charts and timeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import Engine

from monitor.api.quality.access import QualityBase, Reader, review_base
from monitor.api.review.rendering import Renderer
from monitor.api.review.session import Caller, Refused, to_login
from monitor.config import Settings
from monitor.reporting.costs import format_costs
from monitor.reporting.quality_page import FeatureGlance, Glance, feature_page

__all__ = ["QualityPages"]


class QualityPages:
    """The pages, from the store (through `monitor.reporting.quality_page`), the settings, the clock."""

    def __init__(
        self, engine: Engine, settings: Settings, clock: Callable[[], datetime], renderer: Renderer
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.renderer = renderer
        self.glance = Glance(engine, settings)

    def _context(self, request: Request, who: Caller) -> dict[str, object]:
        return {
            "review_base": review_base(request),
            "may_review": who.principal.allows("review"),
            "now": self.clock(),
        }

    async def index(self, request: Request, base: QualityBase, who: Reader) -> Response:
        """GET /quality: every feature's line."""
        if who is None:
            return to_login(request, base)
        rows = await run_in_threadpool(self.glance.read, self.clock())
        return self.renderer.page(
            base, "quality_index.html", {"rows": rows, **self._context(request, who)}, who
        )

    async def feature(self, request: Request, feature: str, base: QualityBase, who: Reader) -> Response:
        """GET /quality/{feature}: its line, the charts of `aiqm report`, the trigger timeline."""
        if who is None:
            return to_login(request, base)
        rows = await run_in_threadpool(self.glance.read, self.clock())
        line: FeatureGlance | None = next((row for row in rows if row.name == feature), None)
        if line is None:
            exc = Refused(404, f"There is no feature named {feature!r}.")
            return self.renderer.refused(base, who, exc)
        page = await run_in_threadpool(feature_page, self.engine, self.settings, feature)
        context = {
            "row": line,
            "page": page,
            "costs": format_costs(page.report["costs"]) if page is not None else [],
            **self._context(request, who),
        }
        return self.renderer.page(base, "quality_feature.html", context, who)
