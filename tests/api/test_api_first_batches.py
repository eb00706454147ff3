"""Issue 15: many clients posting the first batches of features the daemon has not seen yet.

Against a real `aiqm serve` on both stores: every request is answered 2xx (registering the new
features' scheduled jobs races in the worker threads, and must never turn a committed batch into
a 500), every output is stored exactly once, and every new feature ends with exactly one job.
Repeated a few rounds, each round with features nobody has seen.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select
from test_api_serve import bearer, daemon

from monitor.daemon.scheduler import JOBS_TABLE, job_id
from monitor.store.engine import make_engine
from monitor.store.tables import features, labels, outputs

CLIENTS = 8
ROUNDS = 3
BATCHES_PER_FEATURE = 4  # each feature's first batches come from several clients at once
FEATURES_PER_ROUND = 3
BATCH = 25
INGEST, REVIEW = "ingest-token-of-the-race-test", "review-token-of-the-race-test"


def _config(folder: Path, store_url: str) -> Path:
    tokens = [
        {"name": name, "role": name, "sha256": hashlib.sha256(secret.encode()).hexdigest()}
        for name, secret in (("ingest", INGEST), ("review", REVIEW))
    ]
    config = {"database_url": store_url, "tokens": tokens}
    path = folder / "aiqm.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _batch(feature: str, part: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{part}-{n}", "feature": feature, "ts": "2026-03-01T12:00:00Z", "output": f"reply {n}"}
        for n in range(BATCH)
    ]


def _labels(feature: str, part: int) -> list[dict[str, Any]]:
    return [
        {"output_id": f"{part}-{n}", "feature": feature, "verdict": "pass", "source": "human:race"}
        for n in range(BATCH)
    ]


def test_parallel_first_batches_of_new_features(store_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, store_url)
    engine = make_engine(store_url)
    try:
        with daemon(config, tmp_path / "daemon.log") as running:
            for round_no in range(ROUNDS):
                names = [f"race-{round_no}-{k}" for k in range(FEATURES_PER_ROUND)]
                work = [(name, part) for part in range(BATCHES_PER_FEATURE) for name in names]

                def post(item: tuple[str, int], path: str, token: str) -> int:
                    name, part = item
                    body = _batch(name, part) if path == "/v1/outputs" else _labels(name, part)
                    with httpx.Client(base_url=running.url, timeout=60) as http:
                        # two requests on one keep-alive connection: a dropped one fails the second
                        first = http.post(path, json=body, headers=bearer(token)).status_code
                        again = http.post(path, json=body, headers=bearer(token)).status_code
                    return max(first, again)

                with ThreadPoolExecutor(CLIENTS) as pool:
                    answers = list(pool.map(lambda item: post(item, "/v1/outputs", INGEST), work))
                    assert answers == [200] * len(work), (answers, running.text()[-3000:])
                    answers = list(pool.map(lambda item: post(item, "/v1/labels", REVIEW), work))
                    assert answers == [200] * len(work), (answers, running.text()[-3000:])
                with engine.connect() as conn:
                    for name in names:
                        stored = conn.execute(
                            select(func.count(), func.count(func.distinct(outputs.c.output_id))).where(
                                outputs.c.feature == name
                            )
                        ).one()
                        assert tuple(stored) == (BATCH * BATCHES_PER_FEATURE,) * 2
                        total = conn.execute(
                            select(features.c.outputs_total).where(features.c.name == name)
                        ).scalar_one()
                        assert total == BATCH * BATCHES_PER_FEATURE
                        judged = conn.execute(
                            select(func.count()).select_from(labels).where(labels.c.feature == name)
                        ).scalar_one()
                        assert judged == BATCH * BATCHES_PER_FEATURE
                        jobs = conn.exec_driver_sql(
                            f"SELECT count(*) FROM {JOBS_TABLE} WHERE id = '{job_id(name)}'"
                        ).scalar_one()
                        assert jobs == 1, name
        text = running.text()
        assert running.process.returncode == 0, text
        assert "Traceback" not in text and "internal error" not in text, text[-3000:]
        assert " 500 " not in text and "ConflictingIdError" not in text
    finally:
        engine.dispose()
