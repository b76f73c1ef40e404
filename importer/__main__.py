"""The program's entry point (``python -m importer`` and the ``ecdp-import`` script).

SIGTERM and SIGINT are answered from the first instant: before the heavy imports and
before the run's own handlers exist, a signal ends the program with 143/130 and nothing
sent, instead of the default action killing it mid-way.
"""

from __future__ import annotations

import signal
import sys


def _early_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _early_exit)
    signal.signal(signal.SIGINT, _early_exit)
    from importer.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
