"""Telling someone how an unattended run ended: webhook notifications (``--notify-url``)
and a Prometheus textfile (``--metrics-file``).

Neither carries the API key or any customer's data: counts, file names, the report's
path, the exit code and why the run stopped. Neither changes the run's exit code: a
failure to notify or to write metrics is one line on stderr.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from importer.errors import masked
from importer.transport import tls_context

NOTIFY_TIMEOUT = 10.0
VERDICTS = {
    0: "every row delivered",
    1: "finished; some rows are invalid or rejected (see the report; a retry cannot help)",
    2: "refused before sending anything",
    3: "aborted",
    75: "some rows are still to be delivered (an outage, retries exhausted or unknown outcomes): rerun later",
    70: "internal error",
    130: "stopped by SIGINT",
    143: "stopped by SIGTERM",
}
METRIC_PREFIX = "ecdp_import_"
LAST_SUCCESS = METRIC_PREFIX + "last_success_timestamp_seconds"


def shown_url(url: str) -> str:
    """A webhook URL fit for a log: scheme and host only (Slack and Teams keep the
    secret in the path, others in the query string)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/..."


def notification(summary: dict[str, Any]) -> dict[str, Any]:
    """The run summary plus ``text``: one line that Slack/Teams incoming webhooks show."""
    code = int(summary.get("exit_code", 1))
    counts = summary.get("counts") or {}
    files = ", ".join(Path(str(i.get("file", "?"))).name for i in summary.get("inputs") or []) or "no input"
    text = f"ecdp-import run on {socket.gethostname()}: {VERDICTS.get(code, 'ended')} (exit {code})"
    if counts:
        total = sum(counts.values())
        text += f"; {total:,} rows of {files}: " + ", ".join(f"{n:,} {status}" for status, n in counts.items())
    elif summary.get("inputs"):
        text += f"; {files}"
    if summary.get("error"):
        text += f"; {summary['error']}"
    # The CLI masks its messages already; this is the net for any other caller.
    masks = {"error": masked(str(summary["error"]))} if summary.get("error") else {}
    return {**summary, **masks, "text": masked(text)}


def notify(urls: list[str], summary: dict[str, Any], ca_bundle: str | None, warn: Callable[[str], None]) -> None:
    """POST the notification to each URL; a failure is reported through ``warn``."""
    body = orjson.dumps(notification(summary))
    context: ssl.SSLContext | None = None
    for url in urls:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "ecdp-import"}
        )
        try:
            if url.startswith("https:") and context is None:
                context = tls_context(ca_bundle)
            with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT, context=context) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            warn(f"notification to {shown_url(url)} failed: HTTP {exc.code}")
        except Exception as exc:  # a notification never fails the run
            reason = getattr(exc, "reason", None) or type(exc).__name__
            warn(f"notification to {shown_url(url)} failed: {reason}")


def write_metrics(path: str, summary: dict[str, Any], mapping: str, now: float | None = None) -> None:
    """Write the run as Prometheus text-format metrics for the node_exporter textfile
    collector, atomically (``write_to_textfile`` writes a temporary file and renames it).
    The last success time of other mappings sharing the file is carried over, and so is
    this mapping's when this run did not succeed."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    now = time.time() if now is None else now
    name = Path(mapping).name
    successes = _last_successes(path)
    if summary.get("exit_code") == 0:
        successes[name] = now
    registry = CollectorRegistry()

    def gauge(metric: str, doc: str, value: float) -> None:
        Gauge(METRIC_PREFIX + metric, doc, ["mapping"], registry=registry).labels(name).set(value)

    rows = Gauge(
        METRIC_PREFIX + "last_run_rows", "Rows of the last run's report by status", ["mapping", "status"],
        registry=registry,
    )  # fmt: skip
    for status, count in (summary.get("counts") or {}).items():
        rows.labels(name, status).set(count)
    gauge("last_run_exit_code", "Exit code of the last run", summary.get("exit_code", 1))
    gauge("last_run_requests", "HTTP requests made by the last run", summary.get("requests", 0))
    gauge("last_run_retries", "Retries made by the last run", summary.get("retries", 0))
    gauge("last_run_throttled", "Times the last run slowed down for 429/503", summary.get("throttled", 0))
    gauge("last_run_duration_seconds", "Duration of the last run", summary.get("duration_s", 0.0))
    gauge("last_run_timestamp_seconds", "When the last run ended (Unix time)", now)
    last = Gauge(LAST_SUCCESS, "When a run of this mapping last exited 0 (Unix time)", ["mapping"], registry=registry)
    for mapping_name, when in successes.items():
        last.labels(mapping_name).set(when)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_to_textfile(path, registry)


def _last_successes(path: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = Path(path).read_text(encoding="utf-8")
        return {
            sample.labels["mapping"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == LAST_SUCCESS
            for sample in family.samples
            if "mapping" in sample.labels
        }
    except (OSError, ValueError, UnicodeDecodeError):
        return {}  # none yet, or not ours: start afresh
