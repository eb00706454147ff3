"""The dashboards type-check against Grafana's own model: the TypeScript types of npm's
`@grafana/schema` (`Dashboard`), with `tsc --noEmit --strict`. String enums of the schema are
compared by their values (`ThresholdsMode.Absolute` is `"absolute"` in JSON). Needs node and
npm (and the npm registry): outside CI it is skipped without them; under CI=true it fails."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from missing_part import missing

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
JSON_OF = (
    "type Json<T> = T extends string ? `${T}` : T extends readonly (infer U)[] ? Json<U>[]"
    " : T extends object ? { [K in keyof T]: Json<T[K]> } : T;\n"
)


# Exact versions: a new upstream release cannot change what this test checks overnight.
PACKAGES = ("@grafana/schema@11.6.9", "typescript@5.9.3")


def test_the_dashboards_are_grafana_dashboards(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        missing("npm is not installed")
    for _attempt in range(2):  # a registry hiccup gets a second try
        install = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", *PACKAGES],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if install.returncode == 0:
            break
    if install.returncode != 0:
        missing(f"npm could not install @grafana/schema: {install.stderr[-500:]}")
    files = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        name = path.stem.replace("-", "_")
        source = tmp_path / f"{name}.ts"
        source.write_text(
            'import type { Dashboard } from "@grafana/schema";\n'
            + JSON_OF
            + f"export const {name}: Json<Dashboard> = {path.read_text(encoding='utf-8')};\n",
            encoding="utf-8",
        )
        files.append(source.name)
    assert files
    checked = subprocess.run(
        [
            str(tmp_path / "node_modules" / ".bin" / "tsc"),
            "--noEmit",
            "--strict",
            "--skipLibCheck",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            "--target",
            "es2022",
            *files,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
