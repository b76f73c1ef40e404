"""An Airflow DAG that imports last night's orders into ECDP, two ways.

* ``import_orders`` (a ``@task``): the warehouse query already gave a pandas DataFrame;
  the library takes it as is, under an import key per logical date, so a retried or
  cleared task sends nothing twice.
* ``import_drop`` (a ``BashOperator``): a file drop, through the CLI, with the exit codes
  mapped to task states.

Exit codes to task states (both ways):

====  ==========================================  =====================================
code  meaning                                     task state
====  ==========================================  =====================================
0     every row delivered                         success
1     finished, some rows invalid/rejected/failed failed, retried (a rerun sends only
                                                  the rows that did not make it)
2     bad mapping, input or setup, nothing sent   failed, not retried (fix it first)
3     aborted (key refused, API down, guard rail) failed, retried
143   stopped by SIGTERM (Airflow killed it)      failed, retried (resumes)
====  ==========================================  =====================================

The callable is plain Python: this file imports without Airflow installed, and the
project's tests run ``import_orders`` against the mock server.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from importer import ConfigError, RunConfig, Secret, run_import

MAPPING = os.environ.get("ECDP_ORDERS_MAPPING", "/opt/ecdp/mappings/orders.yaml")
NOT_RETRIED = {2}


class ImportFailed(Exception):
    """The run ended with a non-zero exit code; ``retry`` says whether a retry can help."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(f"ecdp-import exit {summary['exit_code']}: {summary['counts']} (report {summary['report']})")
        self.summary = summary
        self.retry = summary["exit_code"] not in NOT_RETRIED


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
    from airflow.operators.bash import BashOperator
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

        # Any non-zero exit fails the task and Airflow retries it: a rerun resumes and sends
        # only what did not make it; exit 2 (nothing sent) fails the same way until fixed.
        # ECDP_API_KEY comes from the worker's environment (a mounted secret): never put it
        # in bash_command or env templates, which Airflow shows rendered in its UI.
        BashOperator(
            task_id="import_drop",
            retries=3,
            bash_command=(
                "ecdp-import run /drops/orders_{{ ds_nodash }}.csv.gz --mapping " + MAPPING + " "
                "--state-dir /data/ecdp-state --min-age 300 --max-invalid 5% --summary-json "
                "/data/ecdp-reports/{{ ds }}.json --report /data/ecdp-reports/{{ ds }}.csv"
            ),
        )

    def load_orders_from_warehouse(logical_date: str | None) -> Any:
        raise NotImplementedError("query your warehouse here and return a DataFrame")

    ecdp_orders()
