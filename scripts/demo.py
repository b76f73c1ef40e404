"""`make demo`: start the bundled mock ECDP server on a free loopback port, import
sample_data/ with mappings/, print the summaries, stop the server.

Each demo starts from a clean state directory (.demo/), so it can be run any number of
times; the second import of the CSV at the end shows that a rerun sends nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from importer.mockserver import spawn

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
KEY = "demo-key-not-a-secret"
ECDP = [sys.executable, "-m", "importer"]


def start_mock() -> tuple[subprocess.Popen[str], str]:
    return spawn("--api-key", KEY, "--latency-ms", "5", "--record", str(DEMO / "received.jsonl"), cwd=str(ROOT))


def run(title: str, args: list[str], env: dict[str, str]) -> int:
    print(f"\n=== {title}\n$ ecdp-import {' '.join(args)}", flush=True)
    code = subprocess.call([*ECDP, *args], cwd=ROOT, env=env)
    print(f"(exit code {code})", flush=True)
    return code


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    mock, url = start_mock()
    env = {**os.environ, "ECDP_API_KEY": KEY, "ECDP_BASE_URL": url}
    state = ["--state-dir", str(DEMO / "state")]
    try:
        print(f"mock ECDP server on {url}")
        codes = [
            run(
                "purchases (CSV, customer events, hashed emails)",
                [
                    "run",
                    "sample_data/orders.csv",
                    "--mapping",
                    "mappings/orders.yaml",
                    *state,
                    "--report",
                    ".demo/orders.report.csv",
                    "--errors",
                    ".demo/orders.errors.csv",
                ],
                env,
            ),
            run(
                "campaign triggers (Parquet, segments endpoint)",
                [
                    "run",
                    "sample_data/campaigns.parquet",
                    "--mapping",
                    "mappings/campaigns.yaml",
                    *state,
                    "--report",
                    ".demo/campaigns.report.csv",
                    "--errors",
                    ".demo/campaigns.errors.csv",
                ],
                env,
            ),
            run(
                "the same purchases again: a rerun sends nothing",
                [
                    "run",
                    "sample_data/orders.csv",
                    "--mapping",
                    "mappings/orders.yaml",
                    *state,
                    "--report",
                    ".demo/orders.report.csv",
                ],
                env,
            ),
        ]
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    received = sum(1 for _ in (DEMO / "received.jsonl").open())
    print(f"\nThe mock server accepted {received} requests; reports and errors files are in .demo/.")
    print("Exit code 1 above is expected: the samples hold a few deliberately invalid rows.")
    return 0 if all(c in (0, 1) for c in codes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
