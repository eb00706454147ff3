"""The quality page, `/quality`: every feature at a glance, and a page per feature with the charts
of `aiqm report` and the trigger timeline (any role that may read: `read`, `review`, `admin`).

Server-rendered like the review page, whose parts it reuses (`monitor.api.review`): the session
sign-in and cookie, the CSRF tokens (the only form is signing out), the Jinja2 renderer with its
escaping, and the security headers (a strict CSP with a nonce; the charts are PNG data URIs).

- `routes`: the router; it only wires the handlers below to paths.
- `access`: the page's base path, its caller (a role that may read), signing in and out.
- `pages`: the overview and a feature's page, read through `monitor.reporting.quality_page`.
- `rendering`: the review page's renderer with this page's templates and filters.
"""

from monitor.api.quality.routes import router

__all__ = ["router"]
