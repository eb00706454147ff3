"""Time `aiqm backtest` (the same cycle code as the daemon) on simulated histories.

Targets (issue 4): a 40-week, 20,000-output history in under 10 s; a 1,000,000-output
history in under 2 minutes. Each size runs in a fresh process, so the figures include
start-up, ingest into the temporary store and every cycle.

    python benchmarks/backtest.py [--sizes 20000 1000000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from monitor.demo.simulate import LANGUAGES, HistorySpec, write_history


def history(folder: Path, outputs: int) -> tuple[Path, Path]:
    target = folder / f"history-{outputs}"
    if not (target / "labels.jsonl").exists():
        spec = HistorySpec(
            feature="bench",
            weeks=40,
            volume=outputs / 40,
            pass_rate=[(0, 0.94), (10, 0.94), (26, 0.80)],
            segments={"language": LANGUAGES},
            seed=7,
        )
        write_history(spec, target)
    return target / "outputs.jsonl", target / "labels.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "aiqm-bench")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{'outputs':>10} {'seconds':>8} {'peak MB':>8}")
    for size in args.sizes:
        outputs, labels = history(args.dir, size)
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor",
                "backtest",
                "--outputs",
                str(outputs),
                "--labels",
                str(labels),
                "--json",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        print(f"{size:>10,} {seconds:>8.1f} {peak:>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
