"""Run settings: frozen dataclasses built once by the CLI and checked there."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import types
import typing
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from importer.errors import ConfigError

DEFAULT_BASE_URL = "https://api.ecdp.app"


class Secret:
    """A string that never shows itself in a repr, a log or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def _checked(config: Any) -> None:
    """Every field of a config of the library API against its annotation, when the config
    is built: a wrong type is a TypeError naming the field, not an AttributeError later.
    Friendly spellings are taken: a ``str`` API key (wrapped in ``Secret``), a list of
    inputs, a path-like mapping."""
    cls = type(config)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "api_key" and isinstance(value, str):
            value = Secret(value)
        elif f.name == "inputs" and isinstance(value, list):
            value = tuple(value)
        elif f.name in ("mapping", "report", "errors", "summary_json", "state_dir") and isinstance(value, os.PathLike):
            value = os.fspath(value)
        object.__setattr__(config, f.name, value)
        allowed = _runtime_types(hints[f.name])
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
            raise TypeError(f"{cls.__name__}.{f.name} must be {names}, got {type(value).__name__}")


def _runtime_types(hint: Any) -> tuple[type, ...]:
    """``str | None`` -> (str, NoneType); ``tuple[Any, ...]`` -> (tuple,); a float takes an int."""
    found: list[type] = []
    for part in typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,):
        origin = typing.get_origin(part) or part
        found.append(origin)
        if origin is float:
            found.append(int)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class SourceOptions:
    encoding: str = "utf-8"
    delimiter: str | None = None
    min_age: float = 0.0  # seconds since an input's last modification, else it is refused
    s3_endpoint_url: str | None = None  # an S3-compatible store (MinIO, Ceph, R2); else $AWS_ENDPOINT_URL

    def __post_init__(self) -> None:
        _checked(self)


@dataclass(frozen=True, slots=True)
class ValidateConfig:
    """What ``validate`` reads; see ``RunConfig`` for ``inputs`` and ``import_key``."""

    inputs: tuple[Any, ...]
    mapping: str
    report: str | None = None
    show: int = 0
    source: SourceOptions = field(default_factory=SourceOptions)
    import_key: str | None = None

    def __post_init__(self) -> None:
        _checked(self)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One run's settings, as the CLI's flags give them.

    ``inputs`` are file paths, and (library only) in-memory tables: a pyarrow Table or
    RecordBatchReader, a pandas or polars DataFrame, or any object with
    ``__arrow_c_stream__``. In-memory data needs ``import_key``, the import's name: the
    same key with the same content sends nothing again; with other content it is refused
    unless ``new_import``. Its default report is ``<state_dir>/reports/<key>.report.csv``.
    """

    inputs: tuple[Any, ...]
    mapping: str
    api_key: Secret  # a plain str is taken too (and wrapped)
    base_url: str = DEFAULT_BASE_URL
    report: str | None = None
    errors: str | None = None
    state_dir: str = field(default_factory=lambda: default_state_dir()[0])
    concurrency: int = 8
    rate_limit: float | None = None
    max_attempts: int = 5
    timeout: float = 30.0
    source: SourceOptions = field(default_factory=SourceOptions)
    resend_unknown: bool = False
    retry_rejected: bool = False
    summary_json: str | None = None
    new_import: bool = False
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    no_dedup: bool = False  # send rows the delivery ledger knows as sent (an ops re-trigger)
    durable: bool = True  # in-flight marks fsynced: they survive a host crash, not only a kill
    ca_bundle: str | None = None
    import_key: str | None = None
    max_invalid: float | Fraction | None = None  # share of rows (0..1) invalid before sending that sends nothing
    max_rejected: float | Fraction | None = None  # share of attempted rows rejected (after 100) that stops the run
    canary: int = 0  # send this many rows first; go on only if each was accepted
    # The state in PostgreSQL (postgresql://...) instead of the state directory's journal.
    state_url: str | None = field(default=None, repr=False)  # its password must not reach a log
    state_schema: str = "ecdp_import"  # the schema of state_url's tables

    def __post_init__(self) -> None:
        _checked(self)


LEGACY_STATE_DIR = ".ecdp-import"


def default_state_dir() -> tuple[str, str | None]:
    """The state directory when ``--state-dir`` is not given, and a notice when it is the
    legacy one. A stable per-user place: the same cron job started from another working
    directory must find the same journal, or it would send everything again.

    Order: ``$ECDP_IMPORT_STATE_DIR``; an existing ``.ecdp-import`` in the working
    directory (where version 0.1 kept it); ``$XDG_STATE_HOME/ecdp-import``;
    ``~/.local/state/ecdp-import``.
    """
    explicit = os.environ.get("ECDP_IMPORT_STATE_DIR")
    if explicit:
        return explicit, None
    xdg = os.environ.get("XDG_STATE_HOME")
    stable = Path(xdg) / "ecdp-import" if xdg else Path.home() / ".local" / "state" / "ecdp-import"
    if (Path(LEGACY_STATE_DIR) / "journal.sqlite3").exists():
        return LEGACY_STATE_DIR, (
            f"using the state directory {LEGACY_STATE_DIR} found in the working directory "
            f"(the default is now {stable}; pass --state-dir to choose)"
        )
    return str(stable), None


def over_share(part: int, whole: int, limit: float | Fraction) -> bool:
    """Whether ``part`` of ``whole`` is more than ``limit`` (a share 0..1), compared
    exactly: in floats ``0.7 / 100`` is a hair under 7/1000, so 7 of 1000 rows were
    "over" ``--max-invalid 0.7%``. A float limit counts as the decimal it prints as."""
    exact = limit if isinstance(limit, Fraction) else Fraction(str(limit))
    return part * exact.denominator > exact.numerator * whole


def default_report(first_input: str, kind: str = "report") -> str:
    """``events.csv`` -> ``events.report.csv`` (``events.validate.csv`` for ``validate``:
    checking a night's problems must not overwrite its run's report), beside the input."""
    path = Path(first_input)
    return str(path.with_name(f"{path.stem}.{kind}.csv"))


def check_base_url(url: str) -> str:
    """Refuse anything but https, except plain http to a loopback host."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        # Not echoed: a password in the URL must not reach a terminal.
        raise ConfigError(
            "--base-url must be the API's root alone: no user or password, query or fragment "
            "(the key goes in $ECDP_API_KEY or --api-key-file)"
        )
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and host:
        if host == "localhost" or _is_loopback(host):
            return url.rstrip("/")
        raise ConfigError(f"refusing plain http:// to {host}: use https (http is allowed only for loopback hosts)")
    raise ConfigError(f"--base-url must be an https:// URL, got {url!r}")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_api_key(key_file: str | None) -> Secret:
    """The key from ``--api-key-file`` or ``$ECDP_API_KEY``; never from a plain flag."""
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            # The path is not echoed: a key pasted where the path belongs must not be shown.
            raise ConfigError(f"cannot read the file given to --api-key-file: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError("the file given to --api-key-file is not UTF-8 text") from exc
        if not key:
            raise ConfigError("the file given to --api-key-file is empty")
    else:
        key = os.environ.get("ECDP_API_KEY", "").strip()
        if not key:
            raise ConfigError("no API key: set ECDP_API_KEY or pass --api-key-file FILE")
    if any(c in key for c in "\r\n\0"):
        raise ConfigError("the API key contains a line break or NUL; check the key file")
    return Secret(key)
