"""Command line: parse options, build a config, call the library, map errors to exit codes.

Exit codes: 0 every row sent (or valid), 1 some rows not, 2 usage/mapping/input/config
error before anything was sent, 3 aborted (key refused, API down), 130/143 signals.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import gc
import os
import re
import signal
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import orjson

from importer import __version__, alerts, history, remote
from importer.config import (
    DEFAULT_BASE_URL,
    RunConfig,
    SourceOptions,
    ValidateConfig,
    check_base_url,
    default_state_dir,
    load_api_key,
)
from importer.errors import ConfigError, ImporterError, JournalFault, OutputError, masked, scrubbed, without_api_words
from importer.pipeline import STATUS_ORDER, Summary, arun_import, run_async, validate
from importer.postgres import DEFAULT_SCHEMA, check_schema, url_secrets
from importer.postgres import is_url as is_state_url
from importer.postgres import shown_url as shown_state_url
from importer.progress import Progress
from importer.scaffold import scaffold
from importer.sender import StopReason, StopToken
from importer.source import open_source
from importer.statecopy import copy_state

PROG = "ecdp-import"
STATE_URL_ENV = "ECDP_IMPORT_STATE_URL"
STATE_SCHEMA_ENV = "ECDP_IMPORT_STATE_SCHEMA"
STATE_DIR_ENV = "ECDP_IMPORT_STATE_DIR"
EXIT_CONFIG = 2
EXIT_ABORTED = 3
EXIT_SOFTWARE = 70  # EX_SOFTWARE: a bug, not the input; distinct from 1 ("some rows not sent")
GC_YOUNG = 35_000  # allocations between young-generation collections on the send path (default 700)
SIGNALS = ((signal.SIGINT, StopReason.SIGINT), (signal.SIGTERM, StopReason.SIGTERM))


def _out(message: str = "") -> None:
    """Print to stdout; a reader that went away (``| head -1``) ends output quietly."""
    try:
        print(_unkeyed(message), flush=True)
    except BrokenPipeError:
        # Further writes, including the interpreter's flush at exit, go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _note(message: str) -> None:
    print(_redact(message), file=sys.stderr, flush=True)


def _err(message: str) -> str:
    """Print the error line; return the message as printed (secrets taken out)."""
    message = _redact(message)
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return message


_SECRETS: list[str] = []


def _unkeyed(message: str) -> str:
    """The secrets taken out, nothing masked: stdout carries JSON and counts a phone mask
    would break (``status --json``'s 1,234,567 rows)."""
    for secret in _SECRETS:
        message = message.replace(secret, "***")
    return message


def _redact(message: str) -> str:
    """Take out every value given to a key option (and the key itself), whatever
    message carries it: argparse echoes arguments in its own errors. Emails and phone
    numbers are masked too: the last net for a message (or a traceback) quoting data."""
    for secret in _SECRETS:
        message = message.replace(secret, "***")
    return masked(message)


def _remember_secrets(argv: Sequence[str]) -> None:
    """The values that follow, or are glued to, any option naming a key."""
    key = os.environ.get("ECDP_API_KEY", "").strip()
    found = [key] if len(key) >= 4 else []
    # The password of a state database URL, wherever it was given.
    for given in [*argv, os.environ.get(STATE_URL_ENV, "")]:  # as given (%-encoded) and as meant
        found += url_secrets(given.partition("=")[2] if given.startswith("--") else given)
    found += [pg for pg in [os.environ.get("PGPASSWORD", "")] if len(pg) >= 4]
    for i, arg in enumerate(argv):
        option, eq, value = arg.partition("=")
        option = option.lower()
        # --api-key-file and every abbreviation argparse would take for a key option
        if (
            len(option) < 5
            or not option.startswith("--")
            or not ("key" in option or "--api-key-file".startswith(option))
        ):
            continue
        if eq:
            found.append(value)
        elif i + 1 < len(argv):
            found.append(argv[i + 1])
    _SECRETS[:] = sorted({v for v in found if v}, key=len, reverse=True)


class _Parser(argparse.ArgumentParser):
    """No flag is taken by its prefix (``--new`` is not ``--new-import``): a typo is an
    error with a suggestion, never another flag."""

    argv: Sequence[str] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        command = self._command()
        usage = (command or self).format_usage()
        sys.stderr.write(_redact(usage))
        _err(message + _suggestion(message, command))
        raise SystemExit(EXIT_CONFIG)

    def _command(self) -> argparse.ArgumentParser | None:
        """The subcommand's parser, for its usage and its flags."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                word = next((a for a in self.argv if not a.startswith("-")), None)
                found = action.choices.get(word) if word else None
                return found if isinstance(found, argparse.ArgumentParser) else None
        return None


def _suggestion(message: str, command: argparse.ArgumentParser | None) -> str:
    """``; did you mean --rate-limit?`` for a misspelt flag or command."""
    if message.startswith("unrecognized arguments:") and command is not None:
        given = [w for w in message.split(":", 1)[1].split() if w.startswith("-")]
        if "--dry-run" in given and command.prog.endswith(" run"):
            return "; run has no --dry-run: `ecdp-import validate` checks and renders every row and sends nothing"
        flags = [f for a in command._actions for f in a.option_strings if a.help != argparse.SUPPRESS]
        for word in given:
            word = word.split("=", 1)[0]
            close = [f for f in flags if f.startswith(word)] or difflib.get_close_matches(word, flags, n=1, cutoff=0.75)
            if close:
                return f"; did you mean {' or '.join(close[:3])}?"
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        options = re.findall(r"'([^']*)'", choice.group(2)) or [c.strip() for c in choice.group(2).split(",")]
        close = difflib.get_close_matches(choice.group(1), options, n=1, cutoff=0.5)
        if close:
            return f"; did you mean {close[0]}?"
    return ""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def _percent(text: str) -> Fraction:
    """``5%``, ``5`` or ``0.5%`` -> a share between 0 and 1, exact: ``0.7%`` is 7/1000,
    where a float would be a hair under it, and 7 rows of 1000 would be over it."""
    number = text.strip().removesuffix("%")
    try:
        float(number)  # the syntax taken: Fraction alone would take 1/3 too
        value = Fraction(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 5%, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage between 0% and 100%, got {text!r}")
    return value / 100


def _http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError("expected an http:// or https:// URL")
    return text


def _id_set(text: str) -> frozenset[int]:
    try:
        return frozenset(int(x) for x in text.replace(";", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


class _RefuseKeyFlag(argparse.Action):
    """``--api-key VALUE`` would leave the key in shell history and ``ps``: refuse it
    without echoing the value (argparse's own message would)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        parser.error("the API key is never taken as a flag value: set ECDP_API_KEY or pass --api-key-file FILE")


def _add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="CSV or Parquet files, or s3:// gs:// az:// URLs (globs allowed)"
    )
    p.add_argument("--mapping", required=True, metavar="FILE", help="YAML column mapping")
    p.add_argument(
        "--report",
        metavar="FILE",
        help="per-row report (.csv, .jsonl, .parquet); default <first input stem>.report.csv",
    )
    _add_csv_options(p)


def _add_csv_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoding", default="utf-8", help="CSV text encoding (default utf-8; a BOM is stripped)")
    p.add_argument("--delimiter", help="CSV delimiter (default: sniffed among , ; tab |)")
    p.add_argument(
        "--s3-endpoint-url",
        metavar="URL",
        help="S3-compatible store for s3:// inputs and outputs (MinIO, Ceph, R2); default $AWS_ENDPOINT_URL",
    )


def _add_min_age(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-age",
        type=_non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="refuse inputs modified less than SECONDS ago (a drop still being copied); default 0",
    )


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return value


def build_parser() -> _Parser:
    parser = _Parser(
        prog=PROG, description="Bulk-import CSV/Parquet rows into ExpertSender CDP as scenario custom events."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run", help="send rows to ECDP", description="Send rows to ECDP; rerunning the same command resumes."
    )
    _add_source_options(run)
    _add_min_age(run)
    run.add_argument("--base-url", help="API root (default $ECDP_BASE_URL, else https://api.ecdp.app)")
    run.add_argument("--api-key-file", metavar="FILE", help="file holding the API key (default: $ECDP_API_KEY)")
    run.add_argument("--api-key", nargs="?", action=_RefuseKeyFlag, help=argparse.SUPPRESS)
    run.add_argument("--errors", metavar="FILE", help="write the invalid/rejected source rows here (CSV)")
    run.add_argument(
        "--state-dir",
        metavar="DIR",
        help="journal directory (default $ECDP_IMPORT_STATE_DIR, else $XDG_STATE_HOME/ecdp-import, "
        "else ~/.local/state/ecdp-import; an existing ./.ecdp-import is still used)",
    )
    _add_state_url(run)
    run.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="CA certificates (PEM) to trust for the API (default $REQUESTS_CA_BUNDLE, "
        "else $SSL_CERT_FILE, else the system's)",
    )
    run.add_argument(
        "--no-dedup",
        action="store_true",
        help="send rows even if the delivery ledger knows their event as sent (an on-purpose re-trigger)",
    )
    run.add_argument(
        "--no-fsync",
        action="store_true",
        help="do not fsync each journal commit: faster, but a host crash (not a killed process) may resend rows",
    )
    run.add_argument(
        "--concurrency", type=_positive_int, default=8, metavar="N", help="most requests in flight (default 8)"
    )
    run.add_argument(
        "--rate-limit", type=_positive_float, metavar="R", help="most requests started in any one-second window"
    )
    run.add_argument(
        "--max-attempts", type=_positive_int, default=5, metavar="N", help="attempts per row per run (default 5)"
    )
    run.add_argument(
        "--timeout", type=_positive_float, default=30.0, metavar="S", help="seconds per request (default 30)"
    )
    run.add_argument(
        "--backoff-base",
        type=_positive_float,
        default=0.5,
        metavar="S",
        help="first retry waits up to S seconds (default 0.5)",
    )
    run.add_argument(
        "--backoff-max", type=_positive_float, default=30.0, metavar="S", help="cap of one backoff wait (default 30)"
    )
    run.add_argument("--resend-unknown", action="store_true", help="also send rows whose earlier outcome is unknown")
    run.add_argument("--retry-rejected", action="store_true", help="also resend rows the API rejected earlier")
    run.add_argument("--summary-json", metavar="FILE", help="write a machine-readable run summary")
    run.add_argument(
        "--new-import", action="store_true", help="import changed content even if its path has an unfinished import"
    )
    run.add_argument(
        "--max-invalid",
        type=_percent,
        metavar="PCT",
        help="check every row first; if more than PCT (e.g. 5%%) are invalid, send nothing (exit 2)",
    )
    run.add_argument(
        "--max-rejected",
        type=_percent,
        metavar="PCT",
        help="stop (exit 3) when more than PCT of the rows answered are rejected, after 100 answers",
    )
    run.add_argument(
        "--canary",
        type=_positive_int,
        default=0,
        metavar="N",
        help="send the first N rows and go on only if the API accepted every one (else exit 3)",
    )
    run.add_argument(
        "--notify-url",
        action="append",
        default=[],
        type=_http_url,
        metavar="URL",
        help="POST a JSON summary (with a 'text' line for Slack/Teams) here when the run ends; repeatable",
    )
    run.add_argument(
        "--metrics-file",
        metavar="FILE",
        help="write Prometheus text-format metrics here when the run ends (node_exporter textfile collector)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    run.add_argument(
        "--progress-interval",
        type=_positive_float,
        metavar="S",
        help="seconds between progress updates (default 0.5 on a terminal, 10 elsewhere)",
    )

    val = sub.add_parser(
        "validate",
        help="check and render payloads, send nothing",
        description="Check every row and render its payload; nothing is sent.",
    )
    _add_source_options(val)
    _add_min_age(val)
    val.add_argument(
        "--show", type=int, default=0, metavar="N", help="print N rendered payloads (emails/phones masked)"
    )

    init = sub.add_parser(
        "init-mapping",
        help="write a starter mapping guessed from a file",
        description="Guess a commented starter mapping from a file's header and a sample of its rows.",
    )
    init.add_argument("input", metavar="INPUT", help="CSV or Parquet file, or an s3:// gs:// az:// object")
    init.add_argument("--endpoint", choices=("customer", "segments"), default="customer")
    init.add_argument("--event-id", type=_positive_int, metavar="N", help="the custom event id")
    init.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    init.add_argument("--force", action="store_true", help="overwrite an existing output file")
    init.add_argument("--sample", type=_positive_int, default=1000, metavar="N", help="rows to sample (default 1000)")
    _add_csv_options(init)

    status = sub.add_parser(
        "status",
        help="list the imports of a state directory",
        description="Every import in the state directory, newest first, with its counts per status.",
    )
    status.add_argument("--state-dir", metavar="DIR", help="default: as for run")
    _add_state_url(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    prune = sub.add_parser(
        "prune",
        help="drop finished imports older than a window",
        description="Drop finished imports older than --older-than, their rows and their ledger entries, then "
        "compact. Unfinished imports are never touched. An event whose ledger entry is dropped can be sent again.",
    )
    prune.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 90d, 12w, 36h")
    prune.add_argument("--state-dir", metavar="DIR", help="default: as for run")
    _add_state_url(prune)
    prune.add_argument("--dry-run", action="store_true", help="say what would be dropped, drop nothing")

    state = sub.add_parser("state", help="move the state between stores", description="Move the state.")
    state_sub = state.add_subparsers(dest="state_command", required=True, metavar="COMMAND")
    copy = state_sub.add_parser(
        "copy",
        help="copy a state directory into PostgreSQL",
        description="Copy a state directory's journal and delivery ledger into an empty PostgreSQL schema (one "
        "transaction, every table's count checked), so that runs with --state-url keep every event already sent.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="DIR", help="the state directory")
    copy.add_argument("--to", dest="state_url", required=True, metavar="URL", help="postgresql://user@host/db")
    copy.add_argument("--state-schema", metavar="NAME", help=f"the schema (default {DEFAULT_SCHEMA})")

    mock = sub.add_parser(
        "mock-server",
        help="local stand-in for the ECDP API",
        description="A strict local ECDP stand-in for demos and tests.",
    )
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    mock.add_argument("--api-key", default="mock-key", help="the key the mock accepts (a test key, not a real one)")
    mock.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    mock.add_argument(
        "--fail-429", type=_fraction, default=0.0, metavar="FRACTION", help="share of requests answered 429"
    )
    mock.add_argument("--retry-after", default="1", help="Retry-After sent with 429 (seconds or HTTP date)")
    mock.add_argument(
        "--fail-5xx", type=_fraction, default=0.0, metavar="FRACTION", help="share answered 500/502/503/504"
    )
    mock.add_argument(
        "--drop",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="share of connections dropped unanswered (never applied)",
    )
    mock.add_argument(
        "--fail-after", type=int, metavar="N", help="answer 503 to everything after N accepted requests (an outage)"
    )
    mock.add_argument(
        "--reject-containing", metavar="TEXT", help="answer 400 to otherwise valid bodies that contain TEXT"
    )
    mock.add_argument("--events", type=_id_set, help="known custom event ids (others get 404); default: any")
    mock.add_argument("--segments", type=_id_set, help="known segment ids (others get 404); default: any")
    mock.add_argument("--record", metavar="FILE", help="append every accepted request to FILE as a JSON line")
    mock.add_argument("--seed", type=int, help="seed for fault injection")
    mock.add_argument("--tls-cert", metavar="FILE", help="serve https with this certificate (PEM); needs --tls-key")
    mock.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _remember_secrets(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command != "run":
        return _dispatch(args)
    ended: dict[str, Any] = {}
    code: int | None = None
    try:
        code = _dispatch(args, ended)
        return code
    except SystemExit as exc:  # a signal before or after sending
        code = exc.code if isinstance(exc.code, int) else 1
        raise
    finally:
        _tell(args, ended, EXIT_SOFTWARE if code is None else code)


def _dispatch(args: argparse.Namespace, ended: dict[str, Any] | None = None) -> int:
    """Run the command; map the importer's errors to exit codes with a one-line message
    (kept in ``ended["error"]`` for the notification)."""
    ended = {} if ended is None else ended
    try:
        if args.command == "run":
            return _run(args, ended)
        if args.command == "validate":
            return _validate(args)
        if args.command == "init-mapping":
            return _init_mapping(args)
        if args.command == "status":
            return _status(args)
        if args.command == "prune":
            return _prune(args)
        if args.command == "state":
            return _state_copy(args)
        return _mock(args)
    except ConfigError as exc:
        ended["error"] = _err(str(exc))
        return EXIT_CONFIG
    except (JournalFault, OutputError) as exc:
        ended["error"] = _err(str(exc))
        return EXIT_ABORTED
    except KeyboardInterrupt:
        # Only before or after sending: while sending, SIGINT drains in-flight requests.
        ended["error"] = _err("interrupted")
        return 130
    except ImporterError as exc:
        ended["error"] = _err(str(exc))
        return 1
    except Exception as exc:  # a bug: say so in one line, keep the traceback in a log
        log = _log_internal_error(args)
        _err(
            f"internal error (a bug in ecdp-import, not in your input): {type(exc).__name__}: {exc}; traceback in {log}"
        )
        ended["error"] = f"internal error: {type(exc).__name__}"
        return EXIT_SOFTWARE


def _add_state_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-url",
        metavar="URL",
        help=f"keep the state in PostgreSQL (postgresql://user@host/db; default ${STATE_URL_ENV}) "
        "instead of the state directory: for containers, whose disk does not outlive the run",
    )
    parser.add_argument(
        "--state-schema",
        metavar="NAME",
        help=f"the schema of --state-url's tables (default ${STATE_SCHEMA_ENV}, else {DEFAULT_SCHEMA})",
    )


def _state_url(args: argparse.Namespace) -> tuple[str | None, str]:
    """(--state-url or $ECDP_IMPORT_STATE_URL, the schema); an explicit --state-dir beats
    the environment's URL, and is refused beside an explicit --state-url."""
    url = args.state_url
    if url and args.state_dir:
        raise ConfigError("--state-dir and --state-url name two places for the state: give one")
    if not url and not args.state_dir:
        url = os.environ.get(STATE_URL_ENV, "").strip() or None
        if url and os.environ.get(STATE_DIR_ENV, "").strip():
            raise ConfigError(
                f"${STATE_URL_ENV} and ${STATE_DIR_ENV} name two places for the state: unset one "
                "(or say which with --state-url or --state-dir)"
            )
    if url and not is_state_url(url):
        # Not echoed: a libpq keyword string (host=... password=...) carries the password.
        raise ConfigError("--state-url takes a postgresql://user@host/db URL (not a libpq keyword string)")
    schema = args.state_schema or os.environ.get(STATE_SCHEMA_ENV, "").strip() or DEFAULT_SCHEMA
    return url, check_schema(schema)


def _tell(args: argparse.Namespace, ended: dict[str, Any], code: int) -> None:
    """``--notify-url`` and ``--metrics-file``: after every run, whatever its end."""
    if not (args.notify_url or args.metrics_file):
        return
    summary = ended.get("summary") or {
        "command": "run",
        "exit_code": code,
        "counts": {},
        "inputs": [{"file": name} for name in args.inputs],
    }
    summary = {**summary, "exit_code": code}
    if ended.get("error"):
        summary["error"] = ended["error"]
    summary = scrubbed(summary, _SECRETS)  # a path may carry the key or an email
    if args.notify_url:
        alerts.notify(args.notify_url, summary, args.ca_bundle, _note)
    if args.metrics_file:
        try:
            alerts.write_metrics(args.metrics_file, summary, scrubbed(args.mapping, _SECRETS, mask=False))
        except OSError as exc:
            _note(f"{PROG}: cannot write --metrics-file {args.metrics_file}: {exc.strerror or exc}")


def _log_internal_error(args: argparse.Namespace) -> str:
    """Append the traceback (secrets taken out) to errors.log in the state directory."""
    text = f"--- {datetime.now(UTC).isoformat(timespec='seconds')} {PROG} {args.command}\n{traceback.format_exc()}"
    folder = getattr(args, "state_dir", None) or default_state_dir()[0]
    try:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "errors.log")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(_redact(text))
        return path
    except OSError:
        sys.stderr.write(_redact(text))
        return "the output above"


def _run(args: argparse.Namespace, ended: dict[str, Any]) -> int:
    base_url = check_base_url(args.base_url or os.environ.get("ECDP_BASE_URL") or DEFAULT_BASE_URL)
    state_url, state_schema = _state_url(args)
    state_dir, notice = (args.state_dir, None) if args.state_dir else default_state_dir()
    if notice and not state_url:
        _note(notice)
    config = RunConfig(
        inputs=tuple(args.inputs),
        mapping=args.mapping,
        api_key=load_api_key(args.api_key_file),
        base_url=base_url,
        report=args.report,
        errors=args.errors,
        state_dir=state_dir,
        concurrency=args.concurrency,
        rate_limit=args.rate_limit,
        max_attempts=args.max_attempts,
        timeout=args.timeout,
        source=SourceOptions(args.encoding, args.delimiter, args.min_age, args.s3_endpoint_url),
        resend_unknown=args.resend_unknown,
        retry_rejected=args.retry_rejected,
        summary_json=args.summary_json,
        new_import=args.new_import,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        durable=not args.no_fsync,
        no_dedup=args.no_dedup,
        ca_bundle=args.ca_bundle,
        max_invalid=args.max_invalid,
        max_rejected=args.max_rejected,
        canary=args.canary,
        state_url=state_url,
        state_schema=state_schema,
    )
    progress = None
    if not args.no_progress:
        tty = sys.stderr.isatty()
        progress = Progress(sys.stderr, tty, args.progress_interval or (0.5 if tty else 10.0))
    # Everything loaded so far lives as long as the process: keep the collector off it
    # (on the send path, collections cost about as much as the HTTP client's own work),
    # and collect the young generation 50 times less often: 64 requests in flight keep
    # thousands of objects young, and each collection walked them all (against an instant
    # server the send path went from 0.45 to 0.54 of the bare client's rows/s, in
    # alternating runs). Cycles are still collected.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    summary = run_async(_run_with_signals(config, progress))
    ended["summary"] = summary.as_json()
    if summary.message:
        ended["error"] = _redact(without_api_words(summary.message))
    _print_summary(summary)
    return summary.exit_code


async def _run_with_signals(config: RunConfig, progress: Progress | None) -> Summary:
    """The library run, with SIGINT/SIGTERM turned into a drain-and-stop: the CLI owns
    the signals; the library only offers a stop token."""
    token = StopToken()
    loop = asyncio.get_running_loop()
    for signum, reason in SIGNALS:
        loop.add_signal_handler(signum, token.stop, reason)
    try:
        return await arun_import(config, progress=progress, notify=_note, stop=token)
    finally:
        for signum, _ in SIGNALS:
            loop.remove_signal_handler(signum)
            signal.signal(signum, _exit_on_signal)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _validate(args: argparse.Namespace) -> int:
    config = ValidateConfig(
        inputs=tuple(args.inputs),
        mapping=args.mapping,
        report=args.report,
        show=max(0, args.show),
        source=SourceOptions(args.encoding, args.delimiter, args.min_age, args.s3_endpoint_url),
    )
    summary = validate(config, notify=_note)
    for body in summary.samples:
        _out(orjson.dumps(mask_body(body)).decode())
    _print_summary(summary)
    _out(f"would send {plural(summary.counts.get('valid', 0), 'row')}")
    if summary.problems:
        _out("problems (by column and kind, most frequent first):")
        for line in summary.problems:
            _out(f"  {line}")
    return summary.exit_code


def _status(args: argparse.Namespace) -> int:
    imports = history.overview(args.state_dir or default_state_dir()[0], *_state_url(args))
    _out(orjson.dumps(imports, option=orjson.OPT_INDENT_2).decode() if args.json else history.render(imports))
    return 0


def _state_copy(args: argparse.Namespace) -> int:
    if not is_state_url(args.state_url):
        raise ConfigError("--to takes a postgresql://user@host/db URL (not a libpq keyword string)")
    schema = check_schema(args.state_schema or os.environ.get(STATE_SCHEMA_ENV, "").strip() or DEFAULT_SCHEMA)
    copied = copy_state(args.source, args.state_url, schema)
    _out(f"copied {args.source} to {shown_state_url(args.state_url)} (schema {schema}):")
    for table, n in copied.items():
        _out(f"  {table:<16}{n:>12,}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    window = history.parse_window(args.older_than)
    imports, rows = history.prune(args.state_dir or default_state_dir()[0], window, args.dry_run, *_state_url(args))
    verb = "would drop" if args.dry_run else "dropped"
    counted = f"{len(imports)} finished import(s) older than {args.older_than}"
    _out(f"{verb} {counted} ({rows:,} rows and their ledger entries)")
    for line in imports:
        _out(f"  {line}")
    return 0


def _init_mapping(args: argparse.Namespace) -> int:
    if remote.is_url(args.input):
        source = remote.open_object(args.input, SourceOptions(args.encoding, args.delimiter, 0.0, args.s3_endpoint_url))
    else:
        source = open_source(args.input, args.encoding, args.delimiter)
    try:
        text = scaffold(source, args.endpoint, args.event_id, args.sample)
    finally:
        remote.release([source])
    if not args.output:
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    if target.exists() and not args.force:
        raise ConfigError(f"{args.output} exists; pass --force to overwrite it")
    target.write_text(text, encoding="utf-8")
    _out(f"wrote {args.output}; next: ecdp-import validate {args.input} --mapping {args.output}")
    return 0


def _mock(args: argparse.Namespace) -> int:
    from importer.mockserver import MockOptions, serve  # aiohttp.web: only this command needs it

    options = MockOptions(
        api_key=args.api_key,
        latency_ms=args.latency_ms,
        fail_429=args.fail_429,
        retry_after=args.retry_after,
        fail_5xx=args.fail_5xx,
        drop=args.drop,
        fail_after=args.fail_after,
        reject_containing=args.reject_containing,
        events=args.events,
        segments=args.segments,
        record=args.record,
        seed=args.seed,
    )
    try:
        tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
        if tls and not args.tls_key:
            raise ConfigError("--tls-cert needs --tls-key")
        asyncio.run(serve(options, args.host, args.port, lambda url: _out(f"mock-server listening on {url}"), tls))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _err(f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
        return EXIT_CONFIG
    return 0


STOP_MESSAGES = {
    "auth": (
        "aborted: the API refused the key (401/403); check ECDP_API_KEY / --api-key-file. "
        "Rows not sent are not_attempted; rerun with a good key to send them."
    ),
    "breaker": (
        "aborted: the API looks unavailable (20 rows in a row failed after all retries). "
        "The rest is not_attempted; rerun the same command later to continue."
    ),
    "sigint": "stopped by SIGINT after in-flight requests finished; rerun the same command to continue.",
    "sigterm": "stopped by SIGTERM after in-flight requests finished; rerun the same command to continue.",
    "input": "stopped: an input changed while it was read; nothing beyond the bytes identified was sent.",
    "state": "aborted: the state directory cannot record any more; nothing more was sent.",
    "guard": "aborted by --max-rejected or --canary; rows not sent are not_attempted.",
    "tls": "stopped: the API's TLS certificate is not trusted; pass --ca-bundle FILE for a corporate CA.",
    "caller": "stopped by the caller after in-flight requests finished.",
}


def _print_summary(summary: Summary) -> None:
    total = sum(summary.counts.values())
    statuses = [s for s in ("valid", *STATUS_ORDER) if s in summary.counts]
    statuses += [s for s in summary.counts if s not in statuses]
    if summary.command == "run":  # the counts below are every run's; the speed is this run's
        _out(
            f"run: {plural(total, 'row')} in {plural(len(summary.inputs), 'file')} over all runs; this run "
            f"{plural(summary.rows_this_run, 'row')} in {summary.duration_s:.1f} s, {summary.rows_per_s:,.0f} rows/s"
        )
    else:
        _out(
            f"{summary.command}: {plural(total, 'row')} in {plural(len(summary.inputs), 'file')}, "
            f"{summary.duration_s:.1f} s, {summary.rows_per_s:,.0f} rows/s"
        )
    for status in statuses:
        _out(f"  {status:<14}{summary.counts[status]:>10,}")
    if summary.command == "run":
        _out(f"  requests {summary.requests:,}, retries {summary.retries:,}, throttled {summary.throttled:,}x")
    _out(masked(f"report: {summary.report}"))
    if summary.errors:
        _out(masked(f"errors: {summary.errors}"))
    for line in next_steps(summary):
        _out(line)
    if summary.stop_reason:
        message = STOP_MESSAGES.get(summary.stop_reason, "")
        print(f"{PROG}: {_redact(summary.message or message)}", file=sys.stderr, flush=True)


def plural(n: int, word: str) -> str:
    """``1 row``, ``5,000 rows``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def next_steps(summary: Summary) -> list[str]:
    """What to do about the rows that are not done, in the run's last lines."""
    if summary.command != "run":
        return []
    counts = summary.counts
    steps = []
    if counts.get("unknown"):
        steps.append(
            f"next: {plural(counts['unknown'], 'row')} unknown (the process ended while their requests were in "
            "flight): check them in ECDP by the report's customer_ref, then rerun with --resend-unknown for those "
            "that did not arrive"
        )
    if counts.get("failed") or counts.get("not_attempted"):
        steps.append("next: rerun the same command later; it sends only the failed and not_attempted rows")
    if counts.get("invalid") or counts.get("rejected"):
        steps.append("next: fix the data or the mapping for the invalid/rejected rows (see the report), then rerun")
    return steps


def mask_body(body: dict[str, Any]) -> dict[str, Any]:
    """A payload fit for a terminal: the email and phone masked."""
    masked = dict(body)
    if "customerEmail" in masked:
        local, _, domain = str(masked["customerEmail"]).partition("@")
        masked["customerEmail"] = f"{local[:1]}***@{domain}"
    if "customerPhone" in masked:
        phone = str(masked["customerPhone"])
        masked["customerPhone"] = phone[:3] + "*" * max(0, len(phone) - 6) + phone[-3:]
    return masked
