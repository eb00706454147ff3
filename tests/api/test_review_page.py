"""The review page over HTTP on both stores: sign-in by token and role, the queue with every
hostile value escaped, the four actions landing in the store under the reviewer's name (with
the time the review took), reasons required, CSRF on every POST, progress, flags, empty states."""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from httpx import Response
from review_data import (
    CYCLE_AT,
    FEATURE,
    OTHER,
    OUTPUTS,
    SCRIPT,
    SQL,
    Clock,
    Tokens,
    answered,
    app_for,
    flags,
    human_labels,
    mint_tokens,
    queue_ids,
    seed,
    services_for,
)
from sqlalchemy import Engine, inspect, select

from monitor.cycle.runner import CycleRunner
from monitor.daemon.services import Services
from monitor.records import validate_output
from monitor.store.tables import labels as labels_table
from monitor.store.writes import insert_outputs

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client; httpx still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PAGE = f"/review/{FEATURE}"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ESCAPED_SQL = "&#39;; DROP TABLE labels;--"


@dataclass
class Site:
    engine: Engine
    clock: Clock
    services: Services
    tokens: Tokens
    client: TestClient

    def login(self, token: str, next_url: str = "") -> Response:
        page = self.client.get("/review/login")
        assert page.status_code == 200
        fields = {"token": token, "csrf": hidden(page.text, "csrf")}
        if next_url:
            fields["next"] = next_url
        return self.client.post("/review/login", data=fields, follow_redirects=False)

    def page(self, path: str = PAGE, **params: str) -> Response:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response

    def submit(self, page: Response, action: str, reason: str = "", **override: str) -> Response:
        """Submit the page's (first) verdict form as a browser would."""
        fields = {
            name: hidden(page.text, name) for name in ("csrf", "output_id", "cycle", "rendered", "origin")
        }
        fields.update(action=action, reason=reason, **override)
        return self.client.post(PAGE, data=fields, follow_redirects=False)


def hidden(text: str, name: str) -> str:
    """The value of the first hidden input called `name`."""
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', text)
    assert found is not None, f"no hidden field {name!r}"
    return html.unescape(found.group(1))


def current_item(text: str) -> str:
    found = re.search(r'id="current" data-output-id="([^"]*)"', text)
    assert found is not None, "no current item on the page"
    return html.unescape(found.group(1))


@pytest.fixture
def site(engine: Engine) -> Iterator[Site]:
    clock = Clock(CYCLE_AT + timedelta(hours=2))
    settings = seed(engine, clock)
    services = services_for(engine, settings, clock)
    tokens = mint_tokens(engine, clock())
    with TestClient(app_for(services), base_url="http://testserver") as client:
        yield Site(engine, clock, services, tokens, client)


@pytest.fixture
def signed_in(site: Site) -> Site:
    response = site.login(site.tokens.review)
    assert response.status_code == 303
    return site


# --------------------------------------------------------------------------- signing in


def test_a_review_token_signs_in_with_a_strict_httponly_session(site: Site) -> None:
    anonymous = site.client.get(PAGE, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/review/login?next=")

    response = site.login(site.tokens.review, next_url=PAGE)
    assert response.status_code == 303
    assert response.headers["location"] == PAGE
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("aiqm_session="))
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    page = site.page()
    assert "signed in as rita reviewer (review)" in page.text


def test_an_admin_token_signs_in_too(site: Site) -> None:
    assert site.login(site.tokens.admin).status_code == 303
    assert "signed in as ada (admin)" in site.page("/review").text


@pytest.mark.parametrize(
    ("which", "status", "message"),
    [("read", 403, "read role"), ("ingest", 403, "ingest role"), ("wrong", 401, "not known")],
)
def test_other_tokens_cannot_sign_in(site: Site, which: str, status: int, message: str) -> None:
    token = "not-a-token" if which == "wrong" else getattr(site.tokens, which)
    response = site.login(token)
    assert response.status_code == status
    assert message in response.text
    assert '<form method="post" action="/review/login">' in response.text  # the form again
    assert "aiqm_session" not in site.client.cookies
    assert site.client.get(PAGE, follow_redirects=False).status_code == 303  # still signed out


def test_bearer_tokens_review_read_and_wrong(site: Site) -> None:
    def get(token: str) -> Response:
        return site.client.get(PAGE, headers={"Authorization": f"Bearer {token}"}, follow_redirects=False)

    assert get(site.tokens.read).status_code == 403
    assert get(site.tokens.ingest).status_code == 403
    assert get("not-a-token").status_code == 401
    page = get(site.tokens.review)
    assert page.status_code == 200
    # A bearer caller's CSRF token is bound to its token: the form works with the header.
    fields = {name: hidden(page.text, name) for name in ("csrf", "output_id", "cycle", "rendered")}
    posted = site.client.post(
        PAGE,
        data={**fields, "action": "pass"},
        headers={"Authorization": f"Bearer {site.tokens.review}"},
        follow_redirects=False,
    )
    assert posted.status_code == 303
    assert human_labels(site.engine)[fields["output_id"]]["verdict"] == "pass"


def test_sign_out_needs_the_csrf_token_and_ends_the_session(signed_in: Site) -> None:
    site = signed_in
    page = site.page()
    assert site.client.post("/review/logout", data={}, follow_redirects=False).status_code == 403
    out = site.client.post("/review/logout", data={"csrf": hidden(page.text, "csrf")}, follow_redirects=False)
    assert out.status_code == 303
    assert site.client.get(PAGE, follow_redirects=False).status_code == 303


# --------------------------------------------------------------------------- the queue


def test_the_queue_shows_every_drawn_item_with_hostile_text_escaped(signed_in: Site) -> None:
    site = signed_in
    page = site.page()
    text = page.text
    for index in range(OUTPUTS):
        assert f">out-{index}</a>" in text
    assert SCRIPT not in text
    assert "alert(1)</script>" not in text
    assert SQL not in text
    assert f'<pre class="text" data-field="input">{ESCAPED_SCRIPT}</pre>' in text  # out-0's input
    assert f'<pre class="text" data-field="output">{ESCAPED_SQL}</pre>' in text  # out-0's output
    assert f'data-field="segment">language={ESCAPED_SCRIPT}</span>' in text
    assert f"<dt>Config</dt><dd>{ESCAPED_SQL}</dd>" in text
    # The page's own script runs only with this response's nonce.
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
    assert nonce is not None and f'<script nonce="{nonce.group(1)}">' in text
    assert text.count("<script") == 1
    assert page.headers["x-frame-options"] == "DENY"

    json_input = site.page(item="out-1").text  # a JSON input, markup in the model version
    assert current_item(json_input) == "out-1"
    assert SCRIPT not in json_input and SQL not in json_input
    assert f"&#34;html&#34;: &#34;{ESCAPED_SCRIPT}&#34;" in json_input
    assert f"<dt>Model</dt><dd>{ESCAPED_SCRIPT}</dd>" in json_input
    assert inspect(site.engine).has_table("labels")


def test_the_current_item_shows_its_evidence_and_the_judges_verdict(signed_in: Site) -> None:
    text = signed_in.page(item="out-2").text
    assert current_item(text) == "out-2"
    assert "Customer question number 2: where is my parcel?" in text
    assert "Answer 2: it ships tomorrow." in text
    assert "<dt>User action</dt><dd>accepted</dd>" in text
    assert "<dt>Model</dt><dd>gpt-x-2026-01</dd>" in text
    assert "<dt>Config</dt><dd>prompt-v7</dd>" in text
    assert "<th>confidence</th><td>0.6</td>" in text
    assert "<th>latency_ms</th><td>802</td>" in text
    assert "Tue 24 Feb 2026, 04:00 UTC" in text
    assert '<span class="tag">rubric</span> <span class="verdict-fail">fail</span>' in text
    assert f"rationale:</span> Promises a date it cannot know {ESCAPED_SCRIPT}" in text
    assert "cost $0.0012" in text
    failed = signed_in.page(item="out-3").text
    assert (
        f'<span class="tag">llm</span> <span class="muted">gave no verdict:</span> timeout {ESCAPED_SCRIPT}'
        in failed
    )
    for key in ("p", "f", "u", "g", "j", "k", "?"):
        assert f"<kbd>{key}</kbd>" in text


def test_next_and_previous_walk_the_queue(signed_in: Site) -> None:
    order = queue_ids(signed_in.engine)
    first = signed_in.page().text
    assert current_item(first) == order[0]
    assert 'id="prev"' not in first
    assert f"item={order[1]}" in re.search(r'id="next"[^>]*>', first).group(0)  # type: ignore[union-attr]
    middle = signed_in.page(item=order[2]).text
    assert f"item={order[1]}" in re.search(r'id="prev"[^>]*>', middle).group(0)  # type: ignore[union-attr]
    assert "item 3 of 6 left" in middle


# --------------------------------------------------------------------------- verdicts


def test_pass_fail_unsure_and_flag_land_in_the_store_under_the_reviewers_name(signed_in: Site) -> None:
    site = signed_in
    order = queue_ids(site.engine)
    reasons = {
        "fail": "Invents a delivery date.",
        "unsure": "Depends on the carrier; cannot tell.",
        "flag": SQL,
    }
    done: dict[str, str] = {}
    when: dict[str, Any] = {}
    for step, action in enumerate(("pass", "fail", "unsure", "flag")):
        page = site.page()
        output_id = current_item(page.text)
        assert output_id == order[step]
        site.clock.advance(7.5 + step)
        when[output_id] = site.clock.now
        response = site.submit(page, action, reasons.get(action, ""))
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(f"{PAGE}?") and f"saved={action}" in location
        assert f"item={order[step + 1]}" in location  # on to the next item
        done[output_id] = action

    labels = human_labels(site.engine)
    assert set(labels) == {order[0], order[1], order[2]}
    for step, output_id in enumerate(order[:3]):
        label = labels[output_id]
        assert label["source"] == "human:rita_reviewer"
        assert label["source_kind"] == "human"
        assert label["verdict"] == done[output_id]
        assert label["reason"] == reasons.get(done[output_id])
        assert label["ts"] == label["received_at"] == when[output_id]
        assert label["review_seconds"] == pytest.approx(7.5 + step)
    [flag] = flags(site.engine)
    assert (flag["output_id"], flag["reason"], flag["flagged_by"]) == (order[3], SQL, "rita reviewer")
    assert flag["resolved_at"] is None
    assert queue_ids(site.engine) == order[4:]  # labelled and flagged items left the queue
    assert "Flagged for ana@example.com." in site.page(saved="flag").text


def test_the_same_reviewer_labelling_again_replaces_their_label(signed_in: Site) -> None:
    site = signed_in
    page = site.page()
    output_id = current_item(page.text)
    assert site.submit(page, "fail", "wrong tone").status_code == 303
    assert site.submit(page, "pass").status_code == 303  # the same form again, now pass
    labels = human_labels(site.engine)
    assert len(labels) == 1
    assert (labels[output_id]["verdict"], labels[output_id]["reason"]) == ("pass", None)
    # Another reviewer's label is kept beside it.
    site.client.cookies.clear()
    assert site.login(site.tokens.admin).status_code == 303
    admin_page = site.page()
    assert site.submit(admin_page, "unsure", "not sure", output_id=output_id).status_code == 303
    with site.engine.connect() as conn:
        query = select(labels_table.c.source).where(labels_table.c.output_id == output_id)
        sources = sorted(row[0] for row in conn.execute(query))
    assert sources == ["human:ada", "human:rita_reviewer"]


@pytest.mark.parametrize("action", ["fail", "unsure", "flag"])
@pytest.mark.parametrize("reason", ["", "   \n  "])
def test_a_reason_is_required_for_all_but_pass(signed_in: Site, action: str, reason: str) -> None:
    site = signed_in
    page = site.page()
    output_id = current_item(page.text)
    response = site.submit(page, action, reason)
    assert response.status_code == 422
    assert "A reason is required" in response.text
    assert current_item(response.text) == output_id  # the same item, to try again
    assert hidden(response.text, "rendered") == hidden(page.text, "rendered")  # timing keeps running
    assert human_labels(site.engine) == {}
    assert flags(site.engine) == []


def test_an_unknown_action_or_output_is_refused(signed_in: Site) -> None:
    site = signed_in
    page = site.page()
    assert site.submit(page, "delete").status_code == 422
    assert site.submit(page, "pass", output_id="no-such-output").status_code == 404
    assert human_labels(site.engine) == {}


@pytest.mark.parametrize("csrf", [None, "", "0" * 64, "other-session"])
def test_a_post_without_the_right_csrf_token_is_403(signed_in: Site, csrf: str | None) -> None:
    site = signed_in
    page = site.page()
    fields = {name: hidden(page.text, name) for name in ("output_id", "cycle", "rendered")}
    fields.update(action="pass")
    if csrf == "other-session":
        other = TestClient(site.client.app, base_url="http://testserver")
        with other:
            login_page = other.get("/review/login")
            other.post(
                "/review/login", data={"token": site.tokens.admin, "csrf": hidden(login_page.text, "csrf")}
            )
            fields["csrf"] = hidden(other.get(PAGE).text, "csrf")
    elif csrf is not None:
        fields["csrf"] = csrf
    response = site.client.post(PAGE, data=fields, follow_redirects=False)
    assert response.status_code == 403
    assert "CSRF token is missing or wrong" in response.text
    assert human_labels(site.engine) == {}


def test_the_sign_in_form_needs_its_csrf_token(site: Site) -> None:
    site.client.get("/review/login")
    response = site.client.post("/review/login", data={"token": site.tokens.review}, follow_redirects=False)
    assert response.status_code == 403
    assert "aiqm_session" not in site.client.cookies


def test_a_forged_render_stamp_stores_no_review_time(signed_in: Site) -> None:
    site = signed_in
    page = site.page()
    output_id = current_item(page.text)
    stamp = hidden(page.text, "rendered")
    forged = str(int(stamp.split(".")[0]) - 3_600_000) + "." + stamp.split(".")[1]
    assert site.submit(page, "pass", rendered=forged).status_code == 303
    assert human_labels(site.engine)[output_id]["review_seconds"] is None


# --------------------------------------------------------------------------- progress and flags


def test_progress_counts_on_the_index_and_the_feature_page(signed_in: Site) -> None:
    site = signed_in
    index = site.page("/review").text
    assert "0 of 6 reviewed" in index
    assert "nothing drawn yet: the next cycle draws on Mon 9 Mar 2026, 06:00 UTC" in index  # OTHER
    assert site.submit(site.page(), "pass").status_code == 303
    assert site.submit(site.page(), "fail", "wrong").status_code == 303
    assert site.submit(site.page(), "flag", "owner should look").status_code == 303
    page = site.page().text
    assert "2 of 6 reviewed</strong>\n  this week" in page
    assert "1 flagged" in page
    assert "item 1 of 3 left" in page
    index = site.page("/review").text
    assert "2 of 6 reviewed" in index
    assert f'href="/review/{FEATURE}/flagged">1 flagged</a>' in index


def test_the_owner_labels_a_flagged_item_from_the_flagged_list(signed_in: Site) -> None:
    site = signed_in
    page = site.page()
    flagged_id = current_item(page.text)
    assert site.submit(page, "flag", f"Is this allowed? {SCRIPT}").status_code == 303
    listing = site.page(f"{PAGE}/flagged")
    assert f'data-output-id="{flagged_id}"' in listing.text
    assert f"Is this allowed? {ESCAPED_SCRIPT}" in listing.text
    assert SCRIPT not in listing.text
    assert hidden(listing.text, "origin") == "flagged"
    missing = site.submit(listing, "fail", "")
    assert missing.status_code == 422 and "A reason is required" in missing.text
    response = site.submit(listing, "fail", "Not allowed: promises a refund.")
    assert response.status_code == 303
    assert response.headers["location"] == f"{PAGE}/flagged?saved=fail"
    assert human_labels(site.engine)[flagged_id]["verdict"] == "fail"
    [flag] = flags(site.engine)
    assert flag["resolved_at"] == site.clock.now
    assert "Nothing flagged." in site.page(f"{PAGE}/flagged").text
    assert "1 of 6 reviewed" in site.page().text


def test_empty_states_say_when_the_next_cycle_draws(signed_in: Site) -> None:
    site = signed_in
    empty = site.page(f"/review/{OTHER}").text
    assert "Nothing to review:</strong> no sample has been drawn for summarizer yet." in empty
    assert "The next cycle draws on Mon 9 Mar 2026, 06:00 UTC." in empty
    for _ in range(OUTPUTS):
        assert site.submit(site.page(), "pass").status_code == 303
    done = site.page().text
    assert "6 of 6 reviewed" in done
    assert "every output drawn in this cycle is labelled" in done
    assert "The next cycle draws on Mon 9 Mar 2026, 06:00 UTC." in done
    assert 'id="current"' not in done


def test_an_earlier_cycle_with_items_left_stays_reachable(signed_in: Site) -> None:
    site = signed_in
    later = CYCLE_AT + timedelta(days=7)
    records: list[Any] = [
        validate_output(
            {"id": f"next-{i}", "feature": FEATURE, "ts": (later - timedelta(days=1, hours=i)).isoformat()}
        )
        for i in range(3)
    ]
    with site.engine.begin() as conn:
        insert_outputs(conn, records, site.clock())
    site.clock.now = later + timedelta(hours=1)
    CycleRunner(site.engine, site.services.settings, site.clock).run(FEATURE, later)
    index = site.page("/review").text
    assert "0 of 3 reviewed" in index
    assert f"/review/{FEATURE}?cycle=2026-03-02T06%3A00%3A00Z" in index
    assert "Mon 2 Mar: 6 left" in index
    page = site.page().text
    assert current_item(page).startswith("next-")
    older = site.page(cycle="2026-03-02T06:00:00Z").text
    assert current_item(older).startswith("out-")
    assert "in an earlier cycle" in older
    # the budget is the last answer's (the later cycle, unlabelled) and the wait this week's
    assert "(cycle of Mon 9 Mar 2026, 06:00 UTC)</span> used no human labels." in older
    assert "3 of this week's sample still wait for a reviewer." in older
    assert site.submit(site.page(cycle="2026-03-02T06:00:00Z"), "pass").status_code == 303
    assert "1 of 6 reviewed" in site.page(cycle="2026-03-02T06:00:00Z").text


# --------------------------------------------------------------------------- the label budget

ANSWERED = 'The last answer <span class="muted">(cycle of Mon 2 Mar 2026, 06:00 UTC)</span> used'


def index_cell(index: str, feature: str) -> str:
    """The text of the feature's "Last answer used" cell on the index."""
    row = index.split(f'<a href="/review/{feature}">{feature}</a>', 1)[1].split("</tr>", 1)[0]
    found = re.search(r'<td class="labels">(.*?)</td>', row, re.S)
    assert found is not None, f"no label budget cell for {feature}"
    return found.group(1)


def test_the_queue_and_the_index_say_what_the_last_answer_cost_in_labels(signed_in: Site) -> None:
    site = signed_in
    answered(site.engine, site.clock(), labelled=40, worth=61.4, saved={"rubric": 18.6, SCRIPT: 2.4})
    words = (
        f"40 human labels, worth 61 with the judges (judge {ESCAPED_SCRIPT} saved 2, judge rubric saved 19)"
    )
    page = site.page().text
    assert f"{ANSWERED} {words}.\n  6 of this week's sample still wait for a reviewer." in page
    assert SCRIPT not in page
    assert index_cell(site.page("/review").text, FEATURE) == words
    assert site.submit(site.page(), "pass").status_code == 303
    assert "5 of this week's sample still wait for a reviewer." in site.page().text


def test_without_a_judge_the_budget_is_the_human_labels_alone(signed_in: Site) -> None:
    site = signed_in
    answered(site.engine, site.clock(), labelled=1, worth=1.0, saved={})
    page = site.page().text
    assert f"{ANSWERED} 1 human label.\n  6 of this week's sample" in page
    assert "with the judges" not in page
    assert index_cell(site.page("/review").text, FEATURE) == "1 human label"


def test_a_cycle_without_labels_says_so_and_no_cycle_shows_no_budget(signed_in: Site) -> None:
    site = signed_in
    assert f"{ANSWERED} no human labels." in site.page().text  # the seeded cycle had none
    index = site.page("/review").text
    assert index_cell(index, FEATURE) == "no human labels"
    assert index_cell(index, OTHER) == ""
    quiet = site.page(f"/review/{OTHER}").text
    assert 'id="labels"' not in quiet
    assert "human label" not in quiet


def test_unknown_features_and_bad_cycles_get_a_page_that_says_so(signed_in: Site) -> None:
    unknown = signed_in.client.get("/review/no-such-feature")
    assert unknown.status_code == 404
    assert "There is no feature named &#39;no-such-feature&#39;." in unknown.text
    bad = signed_in.client.get(PAGE, params={"cycle": "last week"})
    assert bad.status_code == 400
    assert "The cycle must be a time like 2026-03-02T06:00:00Z." in bad.text


def test_a_verdict_sent_after_the_session_ended_leads_to_the_sign_in(signed_in: Site) -> None:
    site = signed_in
    page = site.page()
    site.client.cookies.delete("aiqm_session")
    response = site.submit(page, "pass")
    assert response.status_code == 303
    assert response.headers["location"] == "/review/login?next=%2Freview%2Fsupport-bot"
    assert human_labels(site.engine) == {}
