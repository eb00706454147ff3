"""Drift benchmark: Evidently's DataDriftPreset vs a plain SciPy loop vs monitor.stats (cold and warm).

Ten numeric and five categorical columns; a current window compared with a reference of
the same size, at each size in ``--sizes``. Every tool runs in its own subprocess, so
that its peak memory (``ru_maxrss``) is its own:

evidently   ``Report([DataDriftPreset()]).run(current, reference)`` on pandas DataFrames
            (Evidently 0.7.x; it picks its own tests: Wasserstein/JS above 1,000 rows)
scipy       per column ``scipy.stats.ks_2samp`` and ``chi2_contingency`` on the 2×k counts
ours-cold   ``NumericReference.prepare`` + ``compare_numeric``/``compare_categorical`` + ``decide``
ours-warm   the same with the reference prepared beforehand (what the daemon does each cycle)

Each worker generates the same seeded data, notes its resident memory once the input
arrays exist, then times the tool (best of ``--repeat``; Evidently runs once). "extra" is
the peak resident memory minus that baseline, i.e. what the tool itself needed; it is
compared with the size of the input arrays. Categorical inputs are object arrays of
strings (as parsed JSON gives); every tool counts them itself, inside the timing.

The parent checks that ours reports the same KS and chi-square statistics and p-values
as SciPy (relative 1e-9) and prints a Markdown table. Run it from a virtualenv with
Evidently (``pip install -e . "evidently>=0.7,<0.8" "pandas<3" psutil``), or pass
``--skip-evidently``::

    python benchmarks/drift.py --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy

TOOLS = ("evidently", "scipy", "ours-cold", "ours-warm")
NUMERIC = [f"num_{i}" for i in range(10)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
CARDINALITY = [3, 5, 8, 20, 50]

Data = dict[str, npt.NDArray[Any]]


# --------------------------------------------------------------------------- data


def _numeric_column(rng: np.random.Generator, i: int, n: int, shift: float) -> npt.NDArray[np.float64]:
    """Ten shapes a monitor sees: lengths, latencies, token counts, confidences, costs, ties."""
    kind = i % 10
    if kind == 0:
        values = rng.normal(shift, 1.0, n)
    elif kind == 1:
        values = rng.lognormal(np.log(900) + shift, 0.35, n)  # latency
    elif kind == 2:
        values = np.floor(rng.lognormal(np.log(300) + shift, 0.5, n))  # tokens: ties
    elif kind == 3:
        values = np.clip(rng.beta(9, 2, n) + shift / 10, 0, 1)  # confidence
    elif kind == 4:
        values = rng.gamma(2.0 + shift, 1.0, n)
    elif kind == 5:
        values = rng.exponential(1.0 + shift, n)
    elif kind == 6:
        values = rng.uniform(shift, 1.0 + shift, n)
    elif kind == 7:
        values = rng.poisson(4.0 + shift, n).astype(np.float64)  # heavy ties
    elif kind == 8:
        values = np.round(rng.normal(shift, 1.0, n), 2)
    else:
        values = np.where(rng.random(n) < 0.9, rng.normal(0, 1, n), rng.normal(5 + shift, 1, n))
    return np.ascontiguousarray(values, dtype=np.float64)


def make_data(n: int, seed: int, current: bool) -> Data:
    """One window; the current one has small shifts in a few columns (so some drift, most not)."""
    rng = np.random.default_rng([seed, int(current)])
    data: Data = {}
    for i, name in enumerate(NUMERIC):
        data[name] = _numeric_column(rng, i, n, 0.05 if current and i in (0, 1, 3) else 0.0)
    for name, k in zip(CATEGORICAL, CARDINALITY, strict=True):
        vocabulary = np.array([f"{name}_v{j}" for j in range(k)], dtype=object)
        weights = 1.0 / np.arange(1, k + 1)
        if current and name == "cat_1":
            weights = weights[::-1]
        data[name] = vocabulary[rng.choice(k, size=n, p=weights / weights.sum())]
    return data


def input_bytes(*windows: Data) -> int:
    return sum(array.nbytes for window in windows for array in window.values())


# --------------------------------------------------------------------------- tools


def _counts(values: npt.NDArray[Any]) -> dict[str, int]:
    return dict(Counter(values.tolist()))


def run_scipy(reference: Data, current: Data) -> dict[str, Any]:
    from scipy import stats

    out: dict[str, Any] = {}
    for name in NUMERIC:
        result = stats.ks_2samp(reference[name], current[name])
        out[name] = [float(result.statistic), float(result.pvalue)]
    for name in CATEGORICAL:
        ref, cur = _counts(reference[name]), _counts(current[name])
        keys = sorted(set(ref) | set(cur))
        table = np.array([[ref.get(k, 0) for k in keys], [cur.get(k, 0) for k in keys]])
        result = stats.chi2_contingency(table)
        out[name] = [float(result.statistic), float(result.pvalue)]
    return out


def _ours_compare(
    prepared: dict[str, Any], ref_counts: dict[str, dict[str, int]], current: Data
) -> dict[str, Any]:
    from monitor.stats import compare_categorical, decide
    from monitor.stats.drift_result import compare_numeric_columns

    measurements = compare_numeric_columns([(name, prepared[name], current[name]) for name in NUMERIC])
    for name in CATEGORICAL:
        measurements += compare_categorical(name, ref_counts[name], _counts(current[name]))
    results = decide(measurements)
    return {r.signal: [r.statistic, r.p_value] for r in results if r.primary}


def _ours_prepare(reference: Data) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    from monitor.stats import NumericReference

    prepared = {name: NumericReference.prepare(reference[name]) for name in NUMERIC}
    counts = {name: _counts(reference[name]) for name in CATEGORICAL}
    return prepared, counts


def run_evidently(reference: Data, current: Data) -> Callable[[], dict[str, Any]]:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-not-found,unused-ignore]
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found,unused-ignore]

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    ref_frame, cur_frame = pd.DataFrame(reference), pd.DataFrame(current)

    def call() -> dict[str, Any]:
        report = Report([DataDriftPreset()])
        snapshot = report.run(
            current_data=Dataset.from_pandas(cur_frame, data_definition=definition),
            reference_data=Dataset.from_pandas(ref_frame, data_definition=definition),
        )
        values = {}
        for metric in snapshot.dict()["metrics"]:
            config = metric.get("config", {})
            if "column" in config:
                values[config["column"]] = [config.get("method"), metric.get("value")]
        return values

    return call


def ks_p_value_seconds(result: dict[str, Any], n: int, repeat: int) -> float:
    """CPU time of SciPy's KS p-value evaluation alone for the statistics found: a floor both loops share."""
    from monitor.stats.numeric import ks_p_value

    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for name in NUMERIC:
            ks_p_value(result[name][0], n, n)
        best = min(best, time.process_time() - start)
    return best


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(tool: str, n: int, seed: int, repeat: int) -> dict[str, Any]:
    reference, current = make_data(n, seed, current=False), make_data(n, seed, current=True)
    if tool == "evidently":
        call = run_evidently(reference, current)  # imports and DataFrames before the baseline
        baseline = _rss_bytes()
        repeat = 1
    elif tool == "scipy":
        import scipy.stats  # noqa: F401  (imports are not part of the timing)

        baseline = _rss_bytes()

        def call() -> dict[str, Any]:
            return run_scipy(reference, current)

    elif tool == "ours-cold":
        importlib.import_module("monitor.stats")  # imports are not part of the timing

        baseline = _rss_bytes()

        def call() -> dict[str, Any]:
            prepared, counts = _ours_prepare(reference)
            return _ours_compare(prepared, counts, current)

    elif tool == "ours-warm":
        importlib.import_module("monitor.stats")

        baseline = _rss_bytes()
        prepared, counts = _ours_prepare(reference)  # once per baseline, like the daemon

        def call() -> dict[str, Any]:
            return _ours_compare(prepared, counts, current)

    else:
        raise SystemExit(f"unknown tool {tool!r}")
    best = best_cpu = float("inf")
    result: dict[str, Any] = {}
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = call()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "ks_p_seconds": ks_p_value_seconds(result, n, repeat) if tool != "evidently" else None,
        "tool": tool,
        "n": n,
        "seconds": best,
        "cpu_seconds": best_cpu,
        "peak_bytes": peak,
        "baseline_bytes": baseline,
        "extra_bytes": max(peak - baseline, 0),
        "input_bytes": input_bytes(reference, current),
        "stats": result,
    }


# --------------------------------------------------------------------------- parent


def machine() -> dict[str, str]:
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    info = {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    for package in ("pandas", "evidently"):
        try:
            module = __import__(package)
            info[package] = str(module.__version__)
        except ImportError:
            info[package] = "not installed"
    return info


def check_identical(ours: dict[str, Any], reference: dict[str, Any]) -> float:
    """Largest relative difference between our KS/chi-square statistics and p-values and SciPy's."""
    worst = 0.0
    for name, (statistic, p_value) in reference.items():
        mine = ours[name]
        for a, b in ((mine[0], statistic), (mine[1], p_value)):
            worst = max(worst, abs(a - b) / max(abs(b), 1e-300) if b else abs(a))
    return worst


def run_one(tool: str, n: int, seed: int, repeat: int, timeout: float) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", tool, "--sizes", str(n), "--seed", str(seed)]
    command += ["--repeat", str(repeat)]
    env = dict(os.environ, DO_NOT_TRACK="1", PYTHONHASHSEED="0")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        return {"tool": tool, "n": n, "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def markdown(results: list[dict[str, Any]], info: dict[str, str]) -> str:
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, numpy {info['numpy']}, "
        f"SciPy {info['scipy']}, pandas {info['pandas']}, Evidently {info['evidently']}.",
        "",
        "| rows per window | tool | seconds | CPU seconds | of which KS p-values (CPU) | peak RSS (MB) "
        "| extra (MB) | extra / input | ours-warm is faster by (wall / CPU) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_size.setdefault(r["n"], {})[r["tool"]] = r
    for n, tools in sorted(by_size.items()):
        lines += [_table_row(n, tool, tools) for tool in TOOLS if tool in tools]
    lines.append("")
    for n, tools in sorted(by_size.items()):
        lines += _comparisons(n, tools)
    return "\n".join(lines)


def _table_row(n: int, tool: str, tools: dict[str, dict[str, Any]]) -> str:
    mb = 1024 * 1024
    r = tools[tool]
    if "error" in r:
        return f"| {n:,} | {tool} | failed: {' '.join(r['error'])} | | | | | | |"
    warm = tools.get("ours-warm", {}).get("seconds")
    warm_cpu = tools.get("ours-warm", {}).get("cpu_seconds")
    speedup = ""
    if warm and warm_cpu and tool != "ours-warm":
        speedup = f"{r['seconds'] / warm:.1f}× / {r['cpu_seconds'] / warm_cpu:.1f}×"
    p_share = f"{r['ks_p_seconds']:.3f}" if r.get("ks_p_seconds") is not None else "n/a"
    return (
        f"| {n:,} | {tool} | {r['seconds']:.3f} | {r['cpu_seconds']:.3f} | {p_share} | "
        f"{r['peak_bytes'] / mb:.0f} | {r['extra_bytes'] / mb:.0f} | "
        f"{r['extra_bytes'] / r['input_bytes']:.2f} | {speedup} |"
    )


def _comparisons(n: int, tools: dict[str, dict[str, Any]]) -> list[str]:
    """How ours compares with the SciPy loop (same statistics, speed) and with Evidently."""
    lines = []
    if "scipy" in tools and "error" not in tools["scipy"]:
        for tool in ("ours-cold", "ours-warm"):
            if tool in tools and "error" not in tools[tool]:
                worst = check_identical(tools[tool]["stats"], tools["scipy"]["stats"])
                cold_ratio = tools["scipy"]["seconds"] / tools[tool]["seconds"]
                lines.append(
                    f"- {n:,} rows, {tool}: KS/chi-square statistics and p-values vs SciPy, largest "
                    f"relative difference {worst:.1e}; {cold_ratio:.1f}× the SciPy loop's speed"
                )
    if "evidently" in tools and "ours-warm" in tools and "error" not in tools["evidently"]:
        ratio = tools["evidently"]["seconds"] / tools["ours-warm"]["seconds"]
        cold = tools["evidently"]["seconds"] / tools["ours-cold"]["seconds"]
        lines.append(f"- {n:,} rows: ours-warm {ratio:.0f}× and ours-cold {cold:.0f}× faster than Evidently")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated rows per window")
    parser.add_argument("--skip-evidently", action="store_true", help="do not run Evidently")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per tool (best kept; Evidently: 1)")
    parser.add_argument("--seed", type=int, default=20260302)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per worker")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if args.worker:
        print(json.dumps(worker(args.worker, sizes[0], args.seed, args.repeat)))
        return 0
    tools = [t for t in TOOLS if not (args.skip_evidently and t == "evidently")]
    results = []
    for n in sizes:
        for tool in tools:
            result = run_one(tool, n, args.seed, args.repeat, args.timeout)
            seconds = result.get("seconds")
            status = f"{seconds:.3f} s" if seconds is not None else f"failed: {result.get('error')}"
            print(f"{n:>9,} {tool:<10} {status}", file=sys.stderr, flush=True)
            results.append(result)
    info = machine()
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    print(markdown(results, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
