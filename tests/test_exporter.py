"""The Prometheus exporter over a real history on both stores: CONTRACT section 6's names, types
and labels, values equal to what the cycles stored, a bounded number of statements per scrape,
capped cardinality, `aiqm_store_up 0` for a store that cannot be read, and fresh values after
every change (cycles, labels, flags, overrides) although unchanged families are reused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from metrics_history import FEATURE, SETTINGS, build_history, make_settings
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from sqlalchemy import Engine, event, func, insert, literal, select

from monitor.config import Settings
from monitor.metrics.exporter import METRICS, QualityCollector, TextExposition, build_registry
from monitor.store import cycle_queries as q
from monitor.store import feature_queries as fq
from monitor.store import review_queries as rq
from monitor.store import tables as t
from monitor.store.engine import make_engine, migrate
from monitor.store.metric_queries import MAX_STATEMENTS, RunningTotals

CONTRACT = {
    "aiqm_quality_pass_rate": ("gauge", {"feature", "scope"}),
    "aiqm_quality_pass_rate_lower": ("gauge", {"feature", "scope"}),
    "aiqm_quality_pass_rate_upper": ("gauge", {"feature", "scope"}),
    "aiqm_quality_baseline_pass_rate": ("gauge", {"feature"}),
    "aiqm_labels_total": ("counter", {"feature", "source_kind"}),
    "aiqm_outputs_ingested_total": ("counter", {"feature"}),
    "aiqm_review_backlog": ("gauge", {"feature"}),
    "aiqm_drift_score": ("gauge", {"feature", "signal", "test"}),
    "aiqm_trigger_firing": ("gauge", {"feature", "trigger", "scope"}),
    "aiqm_feature_mode": ("gauge", {"feature", "mode"}),
    "aiqm_last_cycle_success_timestamp_seconds": ("gauge", {"feature"}),
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def registry_for(engine: Engine, settings: Settings = SETTINGS) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QualityCollector(engine, settings))
    return registry


def parse(body: str) -> tuple[dict[str, str], Samples]:
    """(TYPE of each exposed name, every sample by name and labels)."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.MULTILINE))
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def scrape(exposition: TextExposition) -> tuple[dict[str, str], Samples]:
    return parse(exposition().decode("utf-8"))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (sample, labels) in samples if sample == name]


@pytest.fixture(scope="module")
def history_engine(module_store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The history, built once per backend: the tests using it only scrape it."""
    engine = make_engine(module_store_url)
    try:
        build_history(engine, tmp_path_factory.mktemp("history"))
        yield engine
    finally:
        engine.dispose()


def test_every_contract_metric_has_its_type_and_labels(history_engine: Engine) -> None:
    types, samples = scrape(TextExposition(registry_for(history_engine)))
    for name, (kind, labels) in CONTRACT.items():
        assert types.get(name) == kind, name
        found = series(samples, name)
        assert found, f"{name} has no series"
        assert all(set(item) == labels for item in found), (name, found[:3])
    assert value(samples, "aiqm_store_up") == 1
    # Every metric the exporter declares is exposed under the conventions' names.
    for spec in METRICS:
        if spec.kind == "counter":
            assert spec.name.endswith("_total"), spec.name
        if spec.name.endswith("_seconds") or "timestamp" in spec.name:
            assert spec.name.endswith("_seconds"), spec.name


def test_values_are_the_stored_results(history_engine: Engine) -> None:
    engine = history_engine
    _, samples = scrape(TextExposition(registry_for(engine)))
    with engine.connect() as conn:
        last = fq.last_cycle(conn, FEATURE)
        baseline = conn.execute(
            select(t.baselines.c.pass_rate).where(
                t.baselines.c.feature == FEATURE, t.baselines.c.status == "active"
            )
        ).scalar_one()
        counts = dict(
            conn.execute(
                select(t.labels.c.source_kind, func.count())
                .where(t.labels.c.feature == FEATURE)
                .group_by(t.labels.c.source_kind)
            ).all()
        )
        outputs = conn.execute(select(t.features.c.outputs_total)).scalar_one()
        judge_cost = conn.execute(select(func.count()).select_from(t.judge_runs)).scalar_one()
    assert last is not None
    result: dict[str, Any] = last["result"]
    quality = result["quality"]
    f = {"feature": FEATURE}
    assert value(samples, "aiqm_quality_pass_rate", **f, scope="all") == pytest.approx(last["pass_rate"])
    assert value(samples, "aiqm_quality_pass_rate_lower", **f, scope="all") == pytest.approx(
        last["pass_rate_low"]
    )
    assert value(samples, "aiqm_quality_pass_rate_upper", **f, scope="all") == pytest.approx(
        last["pass_rate_high"]
    )
    segment = next(scope for scope in quality if scope.startswith("segment:"))
    assert value(samples, "aiqm_quality_pass_rate", **f, scope=segment) == pytest.approx(
        quality[segment]["value"]
    )
    assert value(samples, "aiqm_quality_baseline_pass_rate", **f) == pytest.approx(baseline)
    assert value(samples, "aiqm_quality_fallback_threshold", **f) == pytest.approx(baseline - 0.15)
    assert value(samples, "aiqm_quality_retrain_threshold", **f) == pytest.approx(baseline - 0.05)
    assert value(samples, "aiqm_labels_total", **f, source_kind="human") == counts["human"]
    assert value(samples, "aiqm_labels_total", **f, source_kind="judge") == counts["judge"]
    assert value(samples, "aiqm_outputs_ingested_total", **f) == outputs
    assert value(samples, "aiqm_judge_calls_total", **f, judge="length") == judge_cost
    assert value(samples, "aiqm_last_cycle_success_timestamp_seconds", **f) == pytest.approx(
        last["finished_at"].timestamp()
    )
    assert value(samples, "aiqm_last_cycle_scheduled_timestamp_seconds", **f) == last["at"].timestamp()
    # The collapse: fallback fires, the mode is review, and the fired triggers say since when.
    assert value(samples, "aiqm_trigger_firing", **f, trigger="fallback", scope="all") == 1
    assert value(samples, "aiqm_feature_mode", **f, mode="review") == 1
    assert value(samples, "aiqm_feature_mode", **f, mode="normal") == 0
    assert value(samples, "aiqm_trigger_since_timestamp_seconds", **f, trigger="fallback", scope="all") > 0
    for entry in result["drift"]:
        labels = {"signal": entry["signal"], "test": entry["test"]}
        if entry["statistic"] is not None:
            assert value(samples, "aiqm_drift_score", **f, **labels) == pytest.approx(entry["statistic"])
        if entry["p_value"] is not None:
            assert value(samples, "aiqm_drift_p_value", **f, **labels) == pytest.approx(entry["p_value"])
        assert value(samples, "aiqm_drift_detected", **f, signal=entry["signal"]) == int(entry["drifted"])
    kappa = result["judges"]["length"]["kappa"]
    if kappa is not None:
        assert value(samples, "aiqm_judge_agreement_kappa", **f, judge="length") == pytest.approx(kappa)
    actions = result["actions"]["all"]
    assert value(samples, "aiqm_user_action_ratio", **f, action="accepted") == pytest.approx(
        actions["accepted"] / sum(actions.values())
    )
    assert value(samples, "aiqm_cost_per_accepted_output_usd", **f) == pytest.approx(
        result["cost"]["cost_usd"] / actions["accepted"]
    )
    assert value(samples, "aiqm_review_backlog", **f) == 0  # the reviewers labelled every draw
    assert value(samples, "aiqm_cycles_completed_total", **f) == 8
    assert value(samples, "aiqm_cycle_duration_seconds_count", **f) == 8
    owners = {"owner": "support-quality@example.com", "decision_owner": "head@example.com"}
    assert value(samples, "aiqm_feature_info", **f, **owners) == 1


def test_a_scrape_runs_a_bounded_number_of_statements(engine: Engine, tmp_path: Path) -> None:
    build_history(engine, tmp_path / "history", weeks=6)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def statements_of_a_scrape(exposition: TextExposition) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            exposition()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    one = statements_of_a_scrape(TextExposition(registry_for(engine)))
    _copy_feature(engine, [f"copy-{n}" for n in range(5)])
    exposition = TextExposition(registry_for(engine))
    six = statements_of_a_scrape(exposition)
    assert one == six <= MAX_STATEMENTS
    # Nothing changed: no cycle result is read again, and the families are the same objects.
    before = list(exposition.registry.collect())
    again = statements_of_a_scrape(exposition)
    assert again < six
    after = {id(family) for family in exposition.registry.collect()}
    assert sum(id(family) in after for family in before) == len(before) - 3  # build, up, read time
    assert not any("result" in statement for statement in statements)


def _copy_feature(engine: Engine, names: list[str]) -> None:
    """Copy the feature's every row under other names (as the benchmark does)."""
    copied = (t.outputs, t.labels, t.samples, t.cycles, t.baselines, t.trigger_states, t.judge_runs)
    with engine.begin() as conn:
        for name in names:
            for table in copied:
                columns = [c for c in table.columns if c.name != "pk"]
                chosen = [literal(name) if c.name == "feature" else c for c in columns]
                source = select(*chosen).where(table.c.feature == FEATURE)
                conn.execute(insert(table).from_select([c.name for c in columns], source))
            columns = list(t.features.columns)
            chosen = [literal(name) if c.name == "name" else c for c in columns]
            source = select(*chosen).where(t.features.c.name == FEATURE)
            conn.execute(insert(t.features).from_select([c.name for c in columns], source))


def test_cardinality_is_capped_and_the_overflow_counted(history_engine: Engine) -> None:
    settings = make_settings(metrics={"max_scopes_per_feature": 2, "max_signals_per_feature": 3})
    _, full = scrape(TextExposition(registry_for(history_engine)))
    _, capped = scrape(TextExposition(registry_for(history_engine, settings)))
    f = {"feature": FEATURE}

    def scopes(samples: Samples) -> set[str]:
        return {s["scope"] for s in series(samples, "aiqm_quality_pass_rate")} - {"all"}

    assert len(scopes(full)) > 2 and value(full, "aiqm_scopes_dropped", **f) == 0
    assert len(scopes(capped)) == 2
    assert value(capped, "aiqm_scopes_dropped", **f) == len(scopes(full)) - 2
    exported = {s["scope"] for s in series(capped, "aiqm_trigger_firing")} - {"all"}
    assert exported <= scopes(capped) | {s for s in exported if not s.startswith("segment:")}
    signals = {s["signal"] for s in series(capped, "aiqm_drift_score")}
    assert len(signals) == 3
    total = len({s["signal"] for s in series(full, "aiqm_drift_score")})
    assert value(capped, "aiqm_drift_signals_dropped", **f) == total - 3
    drifted = {
        s["signal"] for s in series(full, "aiqm_drift_detected") if full[_key("aiqm_drift_detected", s)]
    }
    assert drifted and (drifted <= signals if len(drifted) <= 3 else signals <= drifted)


def _key(name: str, labels: dict[str, str]) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def test_an_unreadable_store_is_store_up_0_and_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not-migrated.sqlite3'}"
    engine = make_engine(url)
    try:
        exposition = TextExposition(registry_for(engine))
        _, samples = scrape(exposition)
        assert value(samples, "aiqm_store_up") == 0
        assert not series(samples, "aiqm_feature_mode")
        migrate(engine)
        _, samples = scrape(exposition)
        assert value(samples, "aiqm_store_up") == 1
    finally:
        engine.dispose()
    refused = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        _, samples = scrape(TextExposition(registry_for(refused)))
        assert value(samples, "aiqm_store_up") == 0
    finally:
        refused.dispose()


def test_the_exposition_is_prometheus_clients_text_format(history_engine: Engine) -> None:
    registry = build_registry(history_engine, SETTINGS)
    ours = TextExposition(registry)().decode("utf-8")
    theirs = generate_latest(registry).decode("utf-8")

    def quality(body: str) -> Samples:
        return {
            k: v for k, v in parse(body)[1].items() if k[0].startswith("aiqm_") and "read_dur" not in k[0]
        }

    assert quality(ours) == quality(theirs)
    assert parse(ours)[0] == parse(theirs)[0]


def test_every_change_reaches_the_next_scrape(engine: Engine, tmp_path: Path) -> None:
    history = build_history(engine, tmp_path / "history", weeks=9, run=8)
    exposition = TextExposition(registry_for(engine))
    f = {"feature": FEATURE}
    _, before = scrape(exposition)
    # A cycle that nobody reviews yet: a new sample waits in the queue.
    history.runner.labellers = []
    history.run(9)
    _, samples = scrape(exposition)
    drawn = value(samples, "aiqm_sample_size", **f)
    assert drawn > 0 and value(samples, "aiqm_review_backlog", **f) == drawn
    assert value(samples, "aiqm_cycles_completed_total", **f) == 9
    assert value(samples, "aiqm_last_cycle_scheduled_timestamp_seconds", **f) > value(
        before, "aiqm_last_cycle_scheduled_timestamp_seconds", **f
    )
    # Somebody flags one drawn output, a reviewer labels another.
    now = history.clock.now + timedelta(hours=1)
    with engine.begin() as conn:
        queue = rq.queue(conn, FEATURE, history.cycle_times[8])
        rq.add_flag(conn, FEATURE, queue[0].output_id, "looks odd", "ana", now)
    _, samples = scrape(exposition)
    assert value(samples, "aiqm_review_flagged", **f) == 1
    assert value(samples, "aiqm_review_backlog", **f) == drawn - 1
    from monitor.records import LabelRecord
    from monitor.store.writes import insert_labels

    with engine.begin() as conn:
        record = LabelRecord(output_id=queue[1].output_id, feature=FEATURE, verdict="pass", source="human:bo")
        insert_labels(conn, [record], now)
    _, samples = scrape(exposition)
    assert value(samples, "aiqm_review_backlog", **f) == drawn - 2
    assert (
        value(samples, "aiqm_labels_total", **f, source_kind="human")
        == value(before, "aiqm_labels_total", **f, source_kind="human") + 1
    )
    # The off switch: the mode follows an override at once.
    with engine.begin() as conn:
        fq.add_override(conn, FEATURE, "off", "incident", now - timedelta(minutes=1))
    _, samples = scrape(exposition)
    assert value(samples, "aiqm_feature_mode", **f, mode="off") == 1
    assert value(samples, "aiqm_feature_mode", **f, mode="review") == 0
    # A webhook is down (a notification waits for its next round), a digest was given up.
    for kind in ("webhook", "digest"):
        assert value(samples, "aiqm_notifications_retrying", **f, kind=kind) == 0
        assert value(samples, "aiqm_notifications_failed_total", **f, kind=kind) == 0
    from monitor.store import digest_queries as dq
    from monitor.store.tables import notification_deliveries

    with engine.begin() as conn:
        common = {"feature": FEATURE, "attempts": 5, "created_at": now}
        conn.execute(
            notification_deliveries.insert(),
            [
                {**common, "event_pk": 1, "sink": "ops", "status": "waiting", "next_attempt_at": now},
                {**common, "event_pk": 2, "sink": "ops", "status": "waiting", "next_attempt_at": now},
                {**common, "event_pk": 3, "sink": "ops", "status": "delivered", "next_attempt_at": None},
            ],
        )
        dq.enqueue(conn, FEATURE, history.cycle_times[8], ["email"], now)
        (queued,) = dq.due(conn, now, (), timedelta(hours=1))
        dq.record(conn, queued.pk, "given_up", "SMTP down", now)
    _, samples = scrape(exposition)
    assert value(samples, "aiqm_notifications_retrying", **f, kind="webhook") == 2
    assert value(samples, "aiqm_notifications_failed_total", **f, kind="webhook") == 0
    assert value(samples, "aiqm_notifications_retrying", **f, kind="digest") == 0
    assert value(samples, "aiqm_notifications_failed_total", **f, kind="digest") == 1


def test_the_mode_is_resolved_as_the_status_endpoint_resolves_it(engine: Engine, tmp_path: Path) -> None:
    """An override in force sets `aiqm_feature_mode`; once its `until` passes, the triggers do,
    although the features row still holds the override's mode (no cycle ran since)."""
    history = build_history(engine, tmp_path / "history")
    at = history.cycle_times[-1] + timedelta(days=1)
    clock = [at]
    with engine.begin() as conn:  # what `POST /v1/features/{feature}/override` stores
        fq.add_override(conn, FEATURE, "normal", "deploy", at, until=at + timedelta(hours=1))
        q.set_feature_mode(conn, FEATURE, "normal", "manual override: deploy", at, by_override=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QualityCollector(engine, SETTINGS, lambda: clock[0]))
    exposition = TextExposition(registry)
    _, samples = scrape(exposition)
    assert value(samples, "aiqm_feature_mode", feature=FEATURE, mode="normal") == 1
    clock[0] = at + timedelta(hours=2)
    _, samples = scrape(exposition)
    assert value(samples, "aiqm_feature_mode", feature=FEATURE, mode="review") == 1  # fallback fires
    assert value(samples, "aiqm_feature_mode", feature=FEATURE, mode="normal") == 0


def test_running_totals_count_rows_committed_late() -> None:
    """PostgreSQL gives out keys before commit: a row with a lower key can appear after a higher one."""
    engine = make_engine("sqlite://")
    from monitor.store.tables import metadata

    metadata.create_all(engine, tables=[t.judge_runs])
    totals = RunningTotals(t.judge_runs, [t.judge_runs.c.feature], [func.count()], lag=60, recount=3600)

    def add(pk: int) -> None:
        from datetime import UTC, datetime

        with engine.begin() as conn:
            conn.execute(
                insert(t.judge_runs).values(
                    pk=pk, feature="f", judge="j", output_id=str(pk), cost_usd=0.0, at=datetime.now(UTC)
                )
            )

    def read(moment: float) -> float:
        with engine.connect() as conn:
            return totals.read(conn, moment)[("f",)][0]

    add(1)
    assert read(0) == 1
    add(10)
    assert read(10) == 2
    add(5)  # committed after 10 was seen, within the lag: counted
    assert read(20) == 3
    assert read(100) == 3  # now the rows up to 10 settle
    add(7)  # committed after its neighbours settled: counted at the next full recount
    assert read(200) == 3
    assert read(3700) == 4
    add(11)
    assert read(3710) == 5
