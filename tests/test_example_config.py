"""The commented example configuration shipped in config/ loads, and documents every setting."""

from __future__ import annotations

from pathlib import Path

import yaml

from monitor.config import DriftSettings, FeatureSettings, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "aiqm.yaml"


def test_example_config_loads_and_names_a_feature() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.feature("support-reply").fallback_mode == "fallback"
    assert settings.feature("support-reply").sample_size == 50  # from the defaults block
    assert settings.feature("unnamed").owner == "unassigned"


def test_example_config_documents_every_setting() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    documented_top = set(raw)
    assert documented_top >= set(Settings.model_fields) - {"config_file"}
    assert set(raw["defaults"]) == set(FeatureSettings.model_fields)
    assert set(raw["defaults"]["drift"]) == set(DriftSettings.model_fields)
