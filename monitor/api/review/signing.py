"""The review page's HMAC tokens: CSRF tokens, the sign-in form's token and the render stamp.

Every token is an HMAC-SHA256 of its purpose and parts under the daemon's session secret, so
none can be made without the secret and none stands in for another.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

__all__ = ["csrf_token", "login_token", "rendered_stamp", "review_seconds", "same"]


def _mac(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\x00".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def csrf_token(secret: bytes, credential: str) -> str:
    """The CSRF token of a credential (the session cookie's value, or a bearer token)."""
    return _mac(secret, "csrf", credential)


def login_token(secret: bytes, nonce: str) -> str:
    """The sign-in form's CSRF token, bound to the pre-session cookie's random nonce."""
    return _mac(secret, "login", nonce)


def same(expected: str, given: str) -> bool:
    """Whether a submitted token is the expected one (in constant time; any text is safe)."""
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def rendered_stamp(secret: bytes, feature: str, output_id: str, at: datetime) -> str:
    """A signed note of when an item's form was rendered: `<epoch ms>.<mac>`."""
    millis = str(int(at.timestamp() * 1000))
    return f"{millis}.{_mac(secret, 'rendered', feature, output_id, millis)[:32]}"


MAX_STAMP_DIGITS = 15  # milliseconds since 1970 have 13 digits until the year 2286


def review_seconds(secret: bytes, feature: str, output_id: str, stamp: str, now: datetime) -> float | None:
    """Seconds since the signed render stamp; None when it is missing, forged or in the future."""
    millis, _, mac = stamp.partition(".")
    if not millis.isdigit() or len(millis) > MAX_STAMP_DIGITS:
        return None
    if not same(_mac(secret, "rendered", feature, output_id, millis)[:32], mac):
        return None
    seconds = now.timestamp() - int(millis) / 1000
    return round(seconds, 3) if seconds >= 0 else None
