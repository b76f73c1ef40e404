"""The program's entry point (``python -m importer`` and the ``ecdp-import`` script).

SIGTERM and SIGINT are answered from the first instant: before the heavy imports and
before the run's own handlers exist, a signal ends the program with 143/130 and nothing
sent, instead of the default action killing it mid-way.

While the modules load, a signal is only noted, and the program exits right after: an
exception raised into a C extension's initialisation (orjson's, seen here) crashes the
interpreter with a segfault instead of exiting.
"""

from __future__ import annotations

import contextlib
import signal
import sys

_noted: list[int] = []


def _note_signal(signum: int, _frame: object) -> None:
    _noted.append(signum)


def _early_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _note_signal)
    from importer.cli import main as cli_main

    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401 - loaded here, where a signal cannot interrupt its initialisation
    if _noted:
        return 128 + _noted[0]
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _early_exit)
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
