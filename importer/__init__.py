"""ecdp-import: bulk-import CSV/Parquet rows into ExpertSender CDP as scenario custom events.

The public API (imported on first use, so that ``import importer`` stays cheap)::

    from importer import RunConfig, Secret, StopToken, run_import

    summary = run_import(RunConfig(inputs=("orders.csv",), mapping="orders.yaml", api_key=Secret(key)))
    summary.exit_code, summary.counts

``run_import`` runs its own event loop (main thread or a worker thread); ``arun_import``
is the same inside a running loop; ``validate`` renders without sending; a ``StopToken``
(or cancelling the task awaiting ``arun_import``) stops a run from anywhere with SIGTERM's
drain semantics. Inputs are paths, or in-memory tables (pyarrow, pandas, polars, any
Arrow C stream) under an ``import_key``. Configuration problems raise ``ConfigError``
(the CLI's exit 2); a state directory that stops recording raises ``JournalFault``
(exit 3). None of them installs signal handlers, prints or exits.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "run_import": "importer.pipeline",
    "arun_import": "importer.pipeline",
    "validate": "importer.pipeline",
    "Summary": "importer.pipeline",
    "RunConfig": "importer.config",
    "ValidateConfig": "importer.config",
    "SourceOptions": "importer.config",
    "Secret": "importer.config",
    "StopToken": "importer.sender",
    "Progress": "importer.progress",
    "StopReason": "importer.sender",
    "ImporterError": "importer.errors",
    "ConfigError": "importer.errors",
    "MappingError": "importer.errors",
    "InputError": "importer.errors",
    "StateError": "importer.errors",
    "JournalFault": "importer.errors",
    "GuardStop": "importer.errors",
}
__all__ = [
    "ConfigError", "GuardStop", "ImporterError", "InputError", "JournalFault", "MappingError", "Progress",
    "RunConfig", "Secret", "SourceOptions", "StateError", "StopReason", "StopToken", "Summary", "ValidateConfig",
    "__version__", "arun_import", "run_import", "validate",
]  # fmt: skip

if TYPE_CHECKING:
    from importer.config import RunConfig, Secret, SourceOptions, ValidateConfig
    from importer.errors import (
        ConfigError,
        GuardStop,
        ImporterError,
        InputError,
        JournalFault,
        MappingError,
        StateError,
    )
    from importer.pipeline import Summary, arun_import, run_import, validate
    from importer.progress import Progress
    from importer.sender import StopReason, StopToken


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'importer' has no attribute {name!r}")
