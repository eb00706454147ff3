"""The review page's pure parts alone: its HMAC tokens, where a sign-in may lead, a verdict's
validation, the next item, the reviewer's source name, the template filters, the headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.responses import HTMLResponse

from monitor.api.review.rendering import number, preview, secure, show, when
from monitor.api.review.sign_in import after_login
from monitor.api.review.signing import csrf_token, login_token, rendered_stamp, review_seconds, same
from monitor.api.review.verdict import MAX_REASON_CHARS, following, problem, source_name
from monitor.reporting.label_budget import LabelBudget, label_budget

SECRET = b"s" * 32
AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_a_render_stamp_measures_the_review_and_cannot_be_forged() -> None:
    stamp = rendered_stamp(SECRET, "bot", "out-1", AT)
    assert review_seconds(SECRET, "bot", "out-1", stamp, AT + timedelta(seconds=12.5)) == 12.5
    millis, _, mac = stamp.partition(".")
    earlier = f"{int(millis) - 60_000}.{mac}"
    assert review_seconds(SECRET, "bot", "out-1", earlier, AT) is None  # the time was changed
    assert review_seconds(SECRET, "bot", "out-2", stamp, AT) is None  # another item's stamp
    assert review_seconds(b"t" * 32, "bot", "out-1", stamp, AT) is None  # another secret
    assert review_seconds(SECRET, "bot", "out-1", stamp, AT - timedelta(seconds=1)) is None  # future
    for garbage in ("", "abc", "1" * 16 + ".x", "12.", ".abc"):
        assert review_seconds(SECRET, "bot", "out-1", garbage, AT) is None


def test_csrf_tokens_are_bound_to_the_credential_the_secret_and_the_purpose() -> None:
    token = csrf_token(SECRET, "cookie-a")
    assert same(token, csrf_token(SECRET, "cookie-a"))
    assert not same(token, csrf_token(SECRET, "cookie-b"))
    assert not same(token, csrf_token(b"t" * 32, "cookie-a"))
    assert not same(token, login_token(SECRET, "cookie-a"))
    assert not same(token, "é<script>")  # any submitted text is compared safely


@pytest.mark.parametrize(
    ("next_url", "base", "target"),
    [
        ("/review/support-bot?item=a", "/review", "/review/support-bot?item=a"),
        ("/review", "/review", "/review"),
        ("", "/review", "/review"),
        ("/reviewer", "/review", "/review"),
        ("https://evil.example/review/", "/review", "/review"),
        ("/review/\\evil.example", "/review", "/review"),
        ("//evil.example", "", "/"),
        ("/", "", "/"),
    ],
)
def test_a_sign_in_leads_only_to_a_page_of_the_review_site(next_url: str, base: str, target: str) -> None:
    assert after_login(next_url, base) == target


@pytest.mark.parametrize(
    ("action", "reason", "error"),
    [
        ("pass", "", None),
        ("fail", "wrong date", None),
        ("flag", "ask legal", None),
        ("approve", "fine", "Choose pass, fail, unsure or flag."),
        ("fail", "", "A reason is required for marking it fail: say what is wrong or unclear."),
        ("unsure", "", "A reason is required for marking it unsure: say what is wrong or unclear."),
        ("flag", "", "A reason is required for flagging it for the owner: say what is wrong or unclear."),
        ("pass", "x" * (MAX_REASON_CHARS + 1), "The reason is too long (10001 characters; at most 10000)."),
    ],
)
def test_a_verdict_needs_a_known_action_and_a_reason_unless_it_passes(
    action: str, reason: str, error: str | None
) -> None:
    assert problem(action, reason) == error


def test_after_a_verdict_the_next_item_follows_wrapping_to_the_first() -> None:
    assert following(["a", "b", "c"], "a") == "b"
    assert following(["a", "b", "c"], "b") == "c"
    assert following(["a", "b", "c"], "c") == "a"
    assert following(["a", "b"], "gone") == "a"  # not in the queue (any more): the first
    assert following(["a"], "a") is None
    assert following([], "a") is None


def test_a_reviewers_name_becomes_a_source_name_without_blanks() -> None:
    assert source_name("rita reviewer") == "rita_reviewer"
    assert source_name(" tab\there\x00nul ") == "tab_here_nul"
    assert source_name("   ") == "reviewer"
    assert len(source_name("x" * 500)) == 120


def test_the_template_filters() -> None:
    assert when(datetime(2026, 3, 2, 7, 5, tzinfo=UTC)) == "Mon 2 Mar 2026, 07:05 UTC"
    assert show(None) == "" and show("a <b>") == "a <b>"
    assert show({"b": 1, "a": "é"}) == '{\n  "a": "é",\n  "b": 1\n}'
    assert preview("word " * 40, 20) == "word word word word…"
    assert number(0.1234567891) == "0.123457" and number(3) == "3"


def test_every_page_carries_a_strict_policy_with_its_nonce() -> None:
    response = HTMLResponse("<p>hi</p>")
    secure(response, "n0nce")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'nonce-n0nce'" in policy
    assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_label_budget_is_read_from_the_overall_answer_of_a_stored_result() -> None:
    judged = {"labelled": 40, "n_eff": 61.4, "judge_weight": 0.7, "judges_saved": {"rubric": 18.6}}
    budget = label_budget({"quality": {"all": judged, "segment:language=en": {"labelled": 3}}})
    assert budget == LabelBudget(human=40, worth=61.4, judges_saved={"rubric": 18.6})
    assert budget.to_json() == {"human": 40, "worth": 61.4, "judges_saved": {"rubric": 18.6}}
    alone = label_budget({"quality": {"all": {"labelled": 12, "n_eff": 12.0}}})
    assert alone == LabelBudget(human=12, worth=12.0, judges_saved={})
    for unanswered in (None, {}, {"sample_size": 6}, {"quality": {}}):
        assert label_budget(unanswered) is None
