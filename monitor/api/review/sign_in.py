"""Signing in and out of the review page.

A reviewer pastes a `review` or `admin` token once; the page then keeps a signed, HttpOnly,
SameSite=Strict session cookie (`monitor.api.auth`). The sign-in form, which has no session
yet, is bound to a random pre-session cookie: its CSRF token is an HMAC of that cookie's nonce.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from monitor.api.auth import close_session, open_session
from monitor.api.review.rendering import Renderer
from monitor.api.review.session import Base, CallerOrNone, Refused, check_csrf
from monitor.api.review.signing import login_token, same
from monitor.config import Role
from monitor.daemon.tokens import TokenBook

__all__ = ["LOGIN_COOKIE", "SESSION_MAX_AGE", "SignIn", "after_login"]

SESSION_MAX_AGE = 12 * 3600  # a working day; then the reviewer pastes the token again
LOGIN_COOKIE = "aiqm_login"  # the pre-session nonce that binds the sign-in form


def after_login(next_url: str, base: str) -> str:
    """Where a successful sign-in goes: `next_url` when it is a page of the review site, else
    the index (never another site: no `//host`, no backslashes)."""
    target = next_url if next_url.startswith(base + "/") or next_url == base else base
    if target.startswith("//") or "\\" in target:
        target = base
    return target or "/"


class SignIn:
    """The sign-in form, its submit, and signing out."""

    def __init__(
        self,
        tokens: TokenBook,
        renderer: Renderer,
        roles: tuple[Role, ...] = ("review",),
        purpose: str = "reviewing",
    ) -> None:
        self.tokens = tokens
        self.renderer = renderer
        self.secret = renderer.secret
        self.roles = roles
        """The roles the page admits (`admin` always); the quality page admits `read` and `review`."""
        self.purpose = purpose

    def form(
        self,
        request: Request,
        base: Base,
        next_url: Annotated[str, Query(alias="next", max_length=2000)] = "",
    ) -> HTMLResponse:
        """GET /login."""
        return self.page(request, base, next_url, "", 200)

    def page(self, request: Request, base: str, next_url: str, error: str, status_code: int) -> HTMLResponse:
        """The form (with `error` when a sign-in failed) and its pre-session cookie."""
        nonce_value = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = self.renderer.page(
            base,
            "login.html",
            {"error": error, "next": next_url, "login_csrf": login_token(self.secret, nonce_value)},
            status_code=status_code,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            nonce_value,
            max_age=3600,
            path=base or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    def submit(
        self,
        request: Request,
        base: Base,
        token: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
        next_url: Annotated[str, Form(alias="next")] = "",
    ) -> Response:
        """POST /login: a review or admin token opens a session."""
        nonce_value = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce_value or not csrf or not same(login_token(self.secret, nonce_value), csrf):
            return self.page(
                request,
                base,
                next_url,
                "The sign-in form expired (or cookies are off): please try again.",
                403,
            )
        principal = self.tokens.lookup(token.strip())
        if principal is None:
            return self.page(request, base, next_url, "That token is not known (or it was revoked).", 401)
        if not principal.allows(*self.roles):
            return self.page(
                request,
                base,
                next_url,
                f"The token {principal.name!r} has the {principal.role} role; "
                f"{self.purpose} needs a {' or '.join((*self.roles, 'admin'))} token.",
                403,
            )
        response = RedirectResponse(after_login(next_url, base), status_code=303)
        open_session(response, principal, self.secret, SESSION_MAX_AGE, secure=request.url.scheme == "https")
        response.delete_cookie(LOGIN_COOKIE, path=base or "/", httponly=True, samesite="strict")
        return response

    def sign_out(self, base: Base, who: CallerOrNone, csrf: Annotated[str, Form()] = "") -> Response:
        """POST /logout: ends the session (a signed-in caller must send their CSRF token)."""
        if who is not None:
            try:
                check_csrf(self.secret, who, csrf)
            except Refused as exc:
                return self.renderer.refused(base, who, exc)
        response = RedirectResponse(f"{base}/login", status_code=303)
        close_session(response)
        return response
