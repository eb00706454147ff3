"""Who may open the quality page and how they sign in: the review page's session sign-in
(`monitor.api.review.sign_in.SignIn`) admitting the roles that may read, at `/quality/login`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from monitor.api.review.session import Caller, caller_in
from monitor.api.review.sign_in import SignIn
from monitor.config import Role

__all__ = ["READERS", "QualityBase", "QualitySignIn", "Reader", "quality_base", "review_base"]

READERS: tuple[Role, ...] = ("read", "review")
"""Roles that may open the page (and `admin`): it shows figures, never an output's text."""


def quality_base(request: Request) -> str:
    """Where the page is mounted (`/quality`), without a trailing slash."""
    return request.url_for("quality_index").path.rstrip("/")


def review_base(request: Request) -> str:
    """Where the review page is mounted (`/review`)."""
    return request.url_for("review_index").path.rstrip("/")


QualityBase = Annotated[str, Depends(quality_base)]
Reader = Annotated[Caller | None, Depends(caller_in(*READERS))]


class QualitySignIn:
    """The sign-in form, its submit and signing out, on the quality page's paths."""

    def __init__(self, sign_in: SignIn) -> None:
        self.sign_in = sign_in

    def form(
        self,
        request: Request,
        base: QualityBase,
        next_url: Annotated[str, Query(alias="next", max_length=2000)] = "",
    ) -> HTMLResponse:
        """GET /quality/login."""
        return self.sign_in.page(request, base, next_url, "", 200)

    def submit(
        self,
        request: Request,
        base: QualityBase,
        token: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
        next_url: Annotated[str, Form(alias="next")] = "",
    ) -> Response:
        """POST /quality/login: a read, review or admin token opens a session."""
        return self.sign_in.submit(request, base, token, csrf, next_url)

    def sign_out(self, base: QualityBase, who: Reader, csrf: Annotated[str, Form()] = "") -> Response:
        """POST /quality/logout (with the caller's CSRF token)."""
        return self.sign_in.sign_out(base, who, csrf)
