"""The one rule for a feature's mode (`monitor.decide.modes`): an override in force wins, an
override that ended hands back to the triggers, a cleared override left the triggers' mode in
the store, and before any cycle the mode is the default."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given
from hypothesis import strategies as st

from monitor.decide.modes import (
    ENDED,
    NO_OUTPUTS,
    Facts,
    Override,
    ResolvedMode,
    StoredMode,
    Trigger,
    resolve_mode,
    trigger_mode,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
FIRING = Trigger("fallback", "all", "firing", "quality below the floor")
QUIET = Trigger("fallback", "all", "ok", "quality holds")
MODES = ("normal", "review", "fallback", "off")


def test_an_override_in_force_wins_over_the_stored_mode_and_the_triggers() -> None:
    facts = Facts(
        override=Override("off", "incident 42", T0),
        stored=StoredMode("review", "fallback: quality below the floor", T0 - timedelta(days=1)),
        triggers=[FIRING],
        has_cycle=True,
    )
    resolved = resolve_mode(facts, "review")
    assert resolved == ResolvedMode("off", "manual override: incident 42", T0, "override")
    assert resolved.by_override


def test_an_ended_override_hands_back_to_the_triggers() -> None:
    stored = StoredMode("off", "manual override: maintenance", T0, by_override=True)
    ended = T0 + timedelta(hours=2)
    firing = resolve_mode(
        Facts(stored=stored, triggers=[FIRING], override_ended_at=ended, has_cycle=True), "review"
    )
    assert firing == ResolvedMode("review", "fallback: quality below the floor", ended, "cycle")
    quiet = resolve_mode(
        Facts(stored=stored, triggers=[QUIET], override_ended_at=ended, has_cycle=True), "review"
    )
    assert quiet == ResolvedMode("normal", ENDED, ended, "cycle")
    assert not quiet.by_override
    unknown_end = resolve_mode(Facts(stored=stored, has_cycle=True), "review")
    assert unknown_end.since == T0  # when the end is not known, since the stored mode was set


def test_a_cleared_override_left_the_triggers_mode_in_the_store() -> None:
    """Clearing an override stores the triggers' mode at once (not marked as an override's)."""
    stored = StoredMode("normal", "override cleared by admin", T0, by_override=False)
    resolved = resolve_mode(
        Facts(stored=stored, triggers=[QUIET], override_ended_at=T0, has_cycle=True), "off"
    )
    assert resolved == ResolvedMode("normal", "override cleared by admin", T0, "cycle")


def test_before_any_cycle_the_mode_is_the_default() -> None:
    assert resolve_mode(Facts(), "off") == ResolvedMode("normal", NO_OUTPUTS, None, "default")
    outputs_only = resolve_mode(Facts(stored=StoredMode("normal", "", T0)), "off")
    assert outputs_only == ResolvedMode("normal", "", T0, "default")


def test_a_cycle_deciding_takes_the_triggers_mode_unless_overridden() -> None:
    deciding = Facts(triggers=[FIRING], has_cycle=True)
    assert resolve_mode(deciding, "fallback") == ResolvedMode(
        "fallback", "fallback: quality below the floor", None, "cycle"
    )
    assert resolve_mode(Facts(triggers=[QUIET], has_cycle=True), "fallback") == ResolvedMode(
        "normal", "", None, "cycle"
    )
    overridden = Facts(override=Override("normal", "handled by hand"), triggers=[FIRING], has_cycle=True)
    assert resolve_mode(overridden, "fallback").mode == "normal"


def test_only_fallback_at_scope_all_moves_the_mode() -> None:
    others = [
        Trigger("retrain", "all", "firing", "dropped"),
        Trigger("fallback", "segment:language=de", "firing", "dropped there"),
        Trigger("fallback", "all", "pending", "building"),
    ]
    assert trigger_mode(others, "off") == ("normal", "")
    assert trigger_mode([*others, FIRING], "off") == ("off", "fallback: quality below the floor")


# --------------------------------------------------------------------------- property-ish

moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))
overrides = st.builds(Override, st.sampled_from(MODES), st.text(max_size=20), st.none() | moments)
stored_modes = st.builds(
    StoredMode, st.sampled_from(MODES), st.text(max_size=20), st.none() | moments, st.booleans()
)
triggers = st.lists(
    st.builds(
        Trigger,
        st.sampled_from(["fallback", "retrain", "drift", "stale"]),
        st.sampled_from(["all", "segment:language=de"]),
        st.sampled_from(["ok", "pending", "firing", "resolved"]),
        st.text(max_size=20),
    ),
    max_size=6,
    unique_by=lambda t: (t.trigger, t.scope),
)
facts = st.builds(
    Facts,
    override=st.none() | overrides,
    stored=st.none() | stored_modes,
    triggers=triggers,
    override_ended_at=st.none() | moments,
    has_cycle=st.booleans(),
)


@given(facts, st.sampled_from(MODES))
def test_the_mode_comes_from_exactly_one_place(given_facts: Facts, fallback_mode: str) -> None:
    resolved = resolve_mode(given_facts, fallback_mode)
    override, stored = given_facts.override, given_facts.stored
    assert resolved.by_override == (override is not None)
    if override is not None:
        assert resolved.mode == override.mode
    elif stored is not None and not stored.by_override:
        assert (resolved.mode, resolved.reason) == (stored.mode, stored.reason)
    else:
        assert resolved.mode == trigger_mode(given_facts.triggers, fallback_mode)[0]
        assert not resolved.reason.startswith("manual override:")
    assert resolved.source != "cycle" or given_facts.has_cycle


@given(facts, st.sampled_from(MODES), st.text(max_size=20), st.none() | moments)
def test_the_mode_needs_only_the_overrides_mode(
    given_facts: Facts, fallback_mode: str, reason: str, set_at: datetime | None
) -> None:
    """The exporter knows an override's mode only; the mode must not depend on the rest."""
    assume(given_facts.override is not None)
    assert given_facts.override is not None
    other = replace(given_facts, override=Override(given_facts.override.mode, reason, set_at))
    assert resolve_mode(other, fallback_mode).mode == resolve_mode(given_facts, fallback_mode).mode


@given(facts, st.sampled_from(MODES), st.randoms(use_true_random=False))
def test_the_order_of_the_triggers_does_not_matter(
    given_facts: Facts, fallback_mode: str, rng: random.Random
) -> None:
    shuffled = list(given_facts.triggers)
    rng.shuffle(shuffled)
    reordered = replace(given_facts, triggers=shuffled)
    assert resolve_mode(reordered, fallback_mode) == resolve_mode(given_facts, fallback_mode)
