"""The Prometheus text format (0.0.4) of a registry, reusing the text of families seen before."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["TextExposition"]

_go_float: Callable[[float], str] = floatToGoString
"""How Go (and so Prometheus) writes a float: +Inf, NaN, 1.5e+09."""


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class TextExposition:
    """The Prometheus text format (0.0.4) of a registry, as `prometheus_client.generate_latest`
    writes it, minus its per-sample name validation (ours are fixed, valid names): a family
    yielded again as the same object reuses its text from the previous scrape."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._texts: dict[int, tuple[Metric, str]] = {}

    def __call__(self) -> bytes:
        parts: list[str] = []
        texts: dict[int, tuple[Metric, str]] = {}
        for metric in self.registry.collect():
            known = self._texts.get(id(metric))
            text = known[1] if known is not None and known[0] is metric else self._render(metric)
            texts[id(metric)] = (metric, text)
            parts.append(text)
        self._texts = texts
        return "".join(parts).encode("utf-8")

    @staticmethod
    def _render(metric: Metric) -> str:
        name, kind = metric.name, metric.type
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name, kind = name + "_info", "gauge"
        elif kind == "stateset":
            kind = "gauge"
        elif kind == "gaugehistogram":
            kind = "histogram"
        elif kind == "unknown":
            kind = "untyped"
        lines = [f"# HELP {name} {_escape_help(metric.documentation)}\n", f"# TYPE {name} {kind}\n"]
        created: list[str] = []
        for sample in metric.samples:
            if sample.labels:
                pairs = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(sample.labels.items()))
                line = f"{sample.name}{{{pairs}}} {_go_float(sample.value)}"
            else:
                line = f"{sample.name} {_go_float(sample.value)}"
            if sample.timestamp is not None:
                line += f" {int(float(sample.timestamp) * 1000):d}"
            suffix = sample.name[len(metric.name) :]
            (created if suffix in ("_created", "_gsum", "_gcount") else lines).append(line + "\n")
        if created:  # as generate_latest does: OpenMetrics-only samples become a gauge of their own
            return TextExposition._openmetrics_extras(metric, lines, created)
        return "".join(lines)

    @staticmethod
    def _openmetrics_extras(metric: Metric, lines: list[str], extras: list[str]) -> str:
        by_suffix: dict[str, list[str]] = {}
        for line in extras:
            suffix = line.split("{", 1)[0].split(" ", 1)[0][len(metric.name) :]
            by_suffix.setdefault(suffix, []).append(line)
        for suffix, group in sorted(by_suffix.items()):
            lines.append(f"# HELP {metric.name}{suffix} {_escape_help(metric.documentation)}\n")
            lines.append(f"# TYPE {metric.name}{suffix} gauge\n")
            lines.extend(group)
        return "".join(lines)
