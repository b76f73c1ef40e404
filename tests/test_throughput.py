"""Rate limit measured at the server, progress output, the plan line, flat memory."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

from importer.progress import Progress, duration
from tests.conftest import CUSTOMER_MAPPING, cli_env, customers_csv, run_cli


def args_for(mock: Any, *extra: str) -> list[str]:
    return ["run", "in.csv", "--mapping", "m.yaml", "--base-url", mock.url, "--state-dir", "state", *extra]


def test_rate_limit_holds_in_every_one_second_window(tmp_path: Path, mock_factory: Any) -> None:
    mock = mock_factory()
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 70)
    result = run_cli(*args_for(mock, "--rate-limit", "25", "--concurrency", "16"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    arrivals = sorted(r["at"] for r in mock.received())
    assert len(arrivals) == 70
    for i, start in enumerate(arrivals):
        assert sum(1 for t in arrivals[i:] if t < start + 1.0) <= 25
    assert arrivals[-1] - arrivals[0] >= 2.0  # 70 requests at 25/s cannot take under 2 s
    assert "plan: 70 rows at concurrency 16, <= 25 req/s ≈ 3 s at the least" in result.stderr


def test_throttling_api_slows_the_run_instead_of_failing_rows(tmp_path: Path, mock_factory: Any) -> None:
    mock = mock_factory("--fail-429", "0.3", "--retry-after", "0", "--seed", "5")
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 120)
    result = run_cli(
        *args_for(
            mock, "--concurrency", "16", "--max-attempts", "30", "--backoff-base", "0.01", "--summary-json", "s.json"
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr

    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["throttled"] > 0 and summary["counts"] == {"sent": 120}
    assert re.search(r"throttled [1-9]\d*x", result.stdout)


def test_progress_off_a_terminal_is_periodic_lines(tmp_path: Path, mock_factory: Any) -> None:
    mock = mock_factory("--latency-ms", "20")
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 100)
    result = run_cli(*args_for(mock, "--concurrency", "2", "--progress-interval", "0.2"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 3, result.stderr
    assert "\r" not in result.stderr
    assert re.match(r"progress: \d+/100 rows \(\d+%\), [\d,]+ rows/s", lines[0]), lines[0]

    quiet = run_cli(*args_for(mock, "--concurrency", "2", "--progress-interval", "0.2", "--no-progress"), cwd=tmp_path)
    assert "progress:" not in quiet.stderr


def test_progress_bar_on_a_terminal_redraws_one_line() -> None:
    now = [0.0]
    stream = StringIO()
    progress = Progress(stream, tty=True, interval=1, clock=lambda: now[0])
    progress.total = lambda: (1000, True)
    for _ in range(250):
        progress.add("sent")
    progress.add("invalid")
    now[0] = 10.0
    progress.emit()
    assert stream.getvalue() == "\r\x1b[2K251/1,000 rows (25%) · 25 rows/s · ETA 30 s · sent 250, invalid 1"
    assert duration(60_000) == "16 h 40 min" and duration(185) == "3 min 5 s"


def test_plan_counts_rows_of_a_large_csv_exactly(tmp_path: Path, mock: Any) -> None:
    """The scan before sending reads the whole file, so the plan's count is exact."""
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 20_000)
    result = run_cli(
        *args_for(mock, "--rate-limit", "20", "--max-attempts", "1"), cwd=tmp_path, env=cli_env(ECDP_API_KEY="wrong")
    )
    assert result.returncode == 3
    assert "plan: 20,000 rows at concurrency 8, <= 20 req/s ≈ 16 min 40 s at the least" in result.stderr


def peak_rss_mib(*args: str, cwd: Path) -> float:
    """The child's own peak RSS (VmHWM), polled until it exits. Not ru_maxrss: on Linux a
    child starts from its parent's (pytest's) peak and keeps it across exec."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))  # type: ignore[union-attr]
        except (OSError, AttributeError):
            pass
        time.sleep(0.01)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return peak / 1024


def test_memory_stays_flat_as_the_file_grows(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    sizes = {}
    for rows in (30_000, 240_000):
        path = tmp_path / f"in{rows}.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["crm_id", "email", "total", "note"])
            w.writerows([f"C{i}", f"u{i}@example.com", "1.5", "x" * 60] for i in range(rows))
        sizes[rows] = peak_rss_mib(
            "validate", path.name, "--mapping", "m.yaml", "--report", f"r{rows}.csv", cwd=tmp_path
        )
    assert sizes[240_000] < 150, sizes
    assert sizes[240_000] - sizes[30_000] < 25, sizes  # 8x the rows, about the same memory


def test_progress_on_a_real_terminal_is_a_redrawn_bar(tmp_path: Path, mock_factory: Any) -> None:
    import pty

    mock = mock_factory("--latency-ms", "20")
    (tmp_path / "m.yaml").write_text(CUSTOMER_MAPPING)
    customers_csv(tmp_path / "in.csv", 80)
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", *args_for(mock, "--concurrency", "2", "--progress-interval", "0.2")],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=child,
    )
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=30) == 0
    os.close(main)
    text = seen.decode()
    assert text.count("\r\x1b[2K") >= 3 and "progress:" not in text
    assert re.search(r"\r\x1b\[2K80/80 rows \(100%\) · [\d,]+ rows/s · sent 80\r?\n", text), text[-300:]
