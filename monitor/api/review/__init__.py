"""The human review page, `/review` (CONTRACT section 4: the `review` role; `admin` may too).

Server-rendered (Jinja2, every value escaped), plain HTML forms that work without JavaScript,
and a little inline script for the keyboard shortcuts.

- `routes`: the router; it only wires the handlers below to paths.
- `pages`: the index, a feature's queue and its flagged list.
- `verdict`: a reviewer's pass, fail, unsure or flag, stored as a `human:<name>` label.
- `sign_in`: the token sign-in, the session cookie (`monitor.api.auth`), signing out.
- `session`: the caller, the base path, the CSRF check, refusals.
- `signing`: the HMAC tokens (CSRF, sign-in form, render stamp).
- `rendering`: the templates, their filters, the security headers (a strict CSP with a nonce).

Cross-site request forgery: every form carries a token derived by HMAC from the caller's
credential (the session cookie, or the bearer token) and the daemon's session secret, and every
POST checks it (403 when missing or wrong). The sign-in form, which has no session yet, is
bound the same way to a random pre-session cookie.
"""

from monitor.api.review.routes import router
from monitor.api.review.sign_in import SESSION_MAX_AGE
from monitor.api.review.signing import csrf_token

__all__ = ["SESSION_MAX_AGE", "csrf_token", "router"]
