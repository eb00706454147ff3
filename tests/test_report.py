"""`aiqm report` on the demo's degrading feature: one self-contained HTML page with the charts
(embedded PNGs), the decline with its intervals, the week's worst examples with the reviewers'
reasons, a cost table that adds up from the stored outputs, and the launch brief."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from digest_history import FEATURE, build, settings_for
from sqlalchemy import Engine, select

from monitor.errors import NotFound
from monitor.reporting.report import collect_report, render_html, summary_text
from monitor.store.engine import make_engine
from monitor.store.tables import outputs

if TYPE_CHECKING:
    from conftest import CliRunner

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def engine(module_store_url: str) -> Iterator[Engine]:
    """The module's store, once per backend: its tests only read the history."""
    built = make_engine(module_store_url)
    yield built
    built.dispose()


@pytest.fixture(scope="module")
def history(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> list:  # type: ignore[type-arg]
    return build(engine, settings_for(), tmp_path_factory.mktemp("history"), weeks=10)


def test_the_page_shows_the_decline_costs_and_brief(engine: Engine, history: list) -> None:  # type: ignore[type-arg]
    settings = settings_for()
    report = collect_report(engine, settings, FEATURE)
    rates = [c["pass_rate"] for c in report["history"] if c["pass_rate"] is not None]
    assert rates[-1] < report["baseline"]["pass_rate"] - 0.1  # the decline is there to show
    page = render_html(report)
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4 and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    cycle = report["cycle"]
    assert f"{100 * cycle['pass_rate']:.1f}%" in page
    assert f"[{100 * cycle['pass_rate_low']:.1f}%, {100 * cycle['pass_rate_high']:.1f}%]" in page
    assert "wrong or unhelpful answer" in page and report["worst"]  # the reviewers' reasons
    assert "Launch brief: ticket-triage" in page and "tickets go to the manual triage queue" in page
    assert "retrain" in page and "firing" in page
    with engine.connect() as conn:
        window = conn.execute(
            select(outputs.c.signals, outputs.c.user_action).where(
                outputs.c.feature == FEATURE,
                outputs.c.ts >= cycle["window_start"],
                outputs.c.ts < cycle["window_end"],
            )
        ).all()
    model = sum(r[0]["cost_usd"] for r in window)
    accepted = sum(r[1] == "accepted" for r in window)
    costs = report["costs"]
    assert costs.model_usd == pytest.approx(model)
    assert f"<td>model cost</td><td>${model:,.2f}</td>" in page
    assert f"<td>model cost per accepted output</td><td>${model / accepted:,.5f}</td>" in page
    total = costs.model_usd + costs.judge_usd + costs.reviewer_usd
    assert f"<td>total</td><td>${total:,.2f}</td>" in page
    text = summary_text(report)
    assert (
        text.startswith(f"{FEATURE}: weekly review") and "retrain[all]" in text and f"${total:,.2f}" in text
    )


def test_an_earlier_week(engine: Engine, history: list) -> None:  # type: ignore[type-arg]
    report = collect_report(engine, settings_for(), FEATURE, history[3].date())
    assert report["cycle"]["at"] == history[3] and len(report["history"]) == 4
    with pytest.raises(NotFound, match="no cycle on or before 2026-01-01"):
        collect_report(engine, settings_for(), FEATURE, date(2026, 1, 1))


def test_aiqm_report_writes_the_file(
    module_store_url: str,
    history: list,
    aiqm: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    config = tmp_path / "aiqm.yaml"
    config.write_text(f"features:\n  {FEATURE}:\n    owner: ops-ml@example.com\n")
    env = {"AIQM_DATABASE_URL": module_store_url}
    monkeypatch.chdir(tmp_path)
    done = aiqm("report", "--feature", FEATURE, "--config", config, env=env)
    assert done.code == 0, done.err
    path = Path(done.out.strip())
    assert path == tmp_path / f"aiqm-report-{FEATURE}-{history[-1]:%Y-%m-%d}.html" and path.is_file()
    assert path.read_text().count("data:image/png;base64,") == 4
    out = tmp_path / "week.html"
    done = aiqm(
        "report",
        "--feature",
        FEATURE,
        "--week",
        f"{history[2]:%Y-%m-%d}",
        "--out",
        out,
        "--config",
        config,
        env=env,
    )
    assert (
        done.code == 0 and done.out.strip() == str(out) and f"{history[2]:%Y-%m-%d %H:%M}" in out.read_text()
    )
    assert aiqm("report", "--feature", "nope", "--config", config, env=env).code == 2
    bad = aiqm("report", "--feature", FEATURE, "--week", "last", "--config", config, env=env)
    assert bad.code == 2 and "YYYY-MM-DD" in bad.err


def test_empty_sections_say_so_and_sections_keep_their_order(engine: Engine, history: list) -> None:  # type: ignore[type-arg]
    report = collect_report(engine, settings_for(), FEATURE)
    report.update(segments={}, events=[], worst=[], judges={})
    page = render_html(report)
    assert "<p>No trigger moved.</p>" in page
    assert "<p>No failed reviews this week.</p>" in page
    assert "<p>No judge labelled this week's sample.</p>" in page
    assert "<th>segment</th>" not in page  # no table under the segment chart when there are none
    headings = re.findall(r"<h2>([^<]+)</h2>", page)
    assert headings == [
        "Pass rate",
        "Pass rate over time",
        "Per segment",
        "Drift",
        "Trigger timeline",
        "The worst examples of the week",
        "Judge agreement with the reviewers",
        "Cost of the week",
        "Launch brief",
    ]
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>")
