"""An Airflow DAG that imports last night's orders into ECDP, two ways.

* ``import_orders`` (a ``@task``): the warehouse query already gave a pandas DataFrame;
  the library takes it as is, under an import key per logical date, so a retried or
  cleared task sends nothing twice.
* ``import_drop`` (a ``@task`` running the CLI): a file drop, with each exit code mapped
  to a task state by ``outcome``. A plain ``BashOperator`` cannot do that: it retries
  every non-zero exit, and a retry cannot fix an invalid row.

Exit codes to task states (both ways):

====  ==========================================  =====================================
code  meaning                                     task state
====  ==========================================  =====================================
0     every row delivered (or skipped, dup.)      success
1     finished, some rows invalid or rejected     failed, not retried (fix the data)
2     bad mapping, input or setup, nothing sent   failed, not retried (fix it first)
3     aborted (key refused, disk full, guard)     failed, not retried (a person looks)
75    rows still to deliver (outage, failed)      failed, retried (resends only those)
70    internal error                              failed, not retried (report it)
130   stopped by SIGINT                           failed, retried (resumes)
143   stopped by SIGTERM (Airflow killed it)      failed, retried (resumes)
====  ==========================================  =====================================

The callables are plain Python: this file imports without Airflow installed, and the
project's tests run ``import_orders`` and ``outcome`` against the mock server.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta
from typing import Any

from importer import ConfigError, RunConfig, Secret, run_import

MAPPING = os.environ.get("ECDP_ORDERS_MAPPING", "/opt/ecdp/mappings/orders.yaml")
RETRIED = {75, 130, 143}  # a later run can deliver what is left; nothing else gets better by retrying


def outcome(exit_code: int) -> str:
    """The task state for an exit code: ``success``, ``retry`` or ``fail``."""
    if exit_code == 0:
        return "success"
    return "retry" if exit_code in RETRIED else "fail"


class ImportFailed(Exception):
    """The run ended with a non-zero exit code; ``retry`` says whether a retry can help."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(f"ecdp-import exit {summary['exit_code']}: {summary['counts']} (report {summary['report']})")
        self.summary = summary
        self.retry = outcome(summary["exit_code"]) == "retry"


def import_drop(ds: str, nodash: str, reports: str = "/data/ecdp-reports") -> int:
    """Run the CLI on the night's drop; return its exit code. ECDP_API_KEY comes from the
    worker's environment (a mounted secret), never from a command line or a template,
    which Airflow shows rendered in its UI."""
    command = [
        "ecdp-import", "run", f"/drops/orders_{nodash}.csv.gz", "--mapping", MAPPING,
        "--state-dir", "/data/ecdp-state", "--min-age", "300", "--max-invalid", "1%",
        "--summary-json", f"{reports}/{ds}.json", "--report", f"{reports}/{ds}.csv",
    ]  # fmt: skip
    return subprocess.run(command, check=False).returncode


def import_orders(frame: Any, logical_date: str, **settings: Any) -> dict[str, Any]:
    """Send a DataFrame of orders as custom events; return the run's summary (XCom).

    ``settings`` override RunConfig fields (``base_url``, ``state_dir``, ``mapping``...).
    The state directory must be on a volume that outlives the worker: it is what makes
    a retry send only what did not make it.
    """
    config = RunConfig(
        inputs=(frame,),
        import_key=f"orders-{logical_date}",
        mapping=settings.pop("mapping", MAPPING),
        api_key=Secret(settings.pop("api_key", None) or os.environ["ECDP_API_KEY"]),
        **settings,
    )
    summary = run_import(config).as_json()
    if summary["exit_code"] != 0:
        raise ImportFailed(summary)
    return summary


try:  # the DAG itself, where Airflow is installed
    from airflow.decorators import dag, task
    from airflow.exceptions import AirflowException, AirflowFailException
except ImportError:  # the example's callable is usable without Airflow
    dag = None

if dag is not None:  # pragma: no cover - needs Airflow

    @dag(schedule="0 3 * * *", start_date=datetime(2026, 11, 1), catchup=False, tags=["ecdp"])
    def ecdp_orders() -> None:
        @task(retries=3)
        def send_orders(logical_date: str | None = None) -> dict[str, Any]:
            frame = load_orders_from_warehouse(logical_date)  # your query, e.g. via a Hook
            try:
                return import_orders(frame, logical_date or "manual", state_dir="/data/ecdp-state")
            except ConfigError as exc:
                raise AirflowFailException(str(exc)) from exc  # exit 2: a retry cannot help
            except ImportFailed as exc:
                raise (AirflowException if exc.retry else AirflowFailException)(str(exc)) from exc

        send_orders(logical_date="{{ ds }}")

        @task(retries=3, retry_delay=timedelta(minutes=15))
        def send_drop(ds: str | None = None, ds_nodash: str | None = None) -> None:
            code = import_drop(ds or "manual", ds_nodash or "manual")
            state = outcome(code)
            if state == "retry":
                raise AirflowException(f"ecdp-import exit {code}: rows left to deliver; retrying resends only those")
            if state == "fail":
                raise AirflowFailException(f"ecdp-import exit {code}: a retry cannot help; see the report")

        send_drop(ds="{{ ds }}", ds_nodash="{{ ds_nodash }}")

    def load_orders_from_warehouse(logical_date: str | None) -> Any:
        raise NotImplementedError("query your warehouse here and return a DataFrame")

    ecdp_orders()
