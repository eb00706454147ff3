"""What a test does when a part it needs (PostgreSQL, Chromium, Prometheus, npm) is missing:
it fails in CI, where `.ci/run` installs and starts every part, and is skipped elsewhere."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(reason: str) -> NoReturn:
    """Fail under CI=true (a test skipped in CI is a test that does not exist), else skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run in CI, it never skips)")
    pytest.skip(f"{reason} (outside CI only)")
