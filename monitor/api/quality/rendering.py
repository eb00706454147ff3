"""The quality page's renderer: the review page's (`monitor.api.review.rendering`: escaping, CSP
nonce, security headers, CSRF token) with this package's templates in front of the review's, and
a few filters for numbers."""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader

from monitor.api.review.rendering import Renderer, environment

__all__ = ["TEMPLATES", "pct", "quality_renderer", "usd"]

TEMPLATES = Path(__file__).parent / "templates"
CENT = 0.01


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal; "n/a" when unknown."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def usd(value: float | None) -> str:
    """Dollars: cents for sums, four decimals under a cent."""
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if abs(value) >= CENT or value == 0 else f"${value:.4f}"


def quality_renderer(secret: bytes) -> Renderer:
    """The review page's renderer, finding this package's templates first (its `login.html` and
    `refused.html` replace the review's; `base.html` and the filters are the review's)."""
    env = environment()
    review_loader = env.loader
    assert review_loader is not None
    env.loader = ChoiceLoader([FileSystemLoader(TEMPLATES), review_loader])
    env.filters.update(pct=pct, usd=usd)
    return Renderer(secret, env)
