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


def import_args(sample: str, name: str) -> list[str]:
    """``run`` on sample_data/SAMPLE with mappings/NAME.yaml; report and errors in .demo/."""
    return ["run", f"sample_data/{sample}", "--mapping", f"mappings/{name}.yaml", "--state-dir", str(DEMO / "state"),
            "--report", f".demo/{name}.report.csv", "--errors", f".demo/{name}.errors.csv"]  # fmt: skip


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    mock, url = start_mock()
    env = {**os.environ, "ECDP_API_KEY": KEY, "ECDP_BASE_URL": url}
    try:
        print(f"mock ECDP server on {url}")
        codes = [
            run("purchases (CSV, customer events, hashed emails)", import_args("orders.csv", "orders"), env),
            run("campaign triggers (Parquet, segments endpoint)", import_args("campaigns.parquet", "campaigns"), env),
            run("the same purchases again: a rerun sends nothing", import_args("orders.csv", "orders"), env),
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
