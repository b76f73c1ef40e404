"""The importer's exception tree, grouped by what the caller does about it.

ImporterError
├── ConfigError            stop before sending anything (exit 2)
│   ├── MappingError       the YAML mapping is wrong, or names a column the input lacks
│   ├── InputError         an input file is missing, unreadable, undecodable or broken
│   └── StateError         the journal refuses: locked, untrusted, or an unfinished import changed
├── JournalFault           the journal cannot record any more (disk full, deleted): abort (exit 3)
├── OutputError            a report could not be written (disk full): rerun to write it (exit 3)
├── GuardStop              a guard rail stopped the run (--max-rejected, --canary): exit 3
├── ConversionError        one value of one row does not convert: the row is invalid
└── TransportError         one request failed without an HTTP answer: retry it (unless ``fatal``)

Anything else that escapes is a bug: the CLI exits 70 and logs the traceback.
"""

from __future__ import annotations

import re
from typing import Any

MAX_SHOWN = 40
MAX_ECHO = 80
_EMAIL = re.compile(r"([^\s@\"'<>(),;:]+)@([^\s@\"'<>(),;:]+\.[^\s@\"'<>(),;:]+)")
# 7 or more digits (counted in _mask_phone), maybe led by + or (, in groups split by a
# space, a hyphen or brackets. Led by +, it is a phone wherever it stands; else only
# standing alone: not inside a word, a path, a decimal (1234567.89) or a time, not a
# date, and not a row, line or byte position the importer itself quotes (a backfill has
# rows past a million).
_PHONE = re.compile(
    r"(?:(?<!\+)\+|(?<![\w.+/\\-])(?<!row )(?<!line )(?<!offset ))"
    r"\(?\d+(?:[ ()-]{1,2}\d{2,})*"
    r"(?![\w+]|[.:/-]?\d|\.\w)"
)
_DATE = re.compile(r"\d{4}-\d\d-\d\d|\d\d-\d\d-\d{4}")
_DIGIT_RUN = re.compile(r"\d[\d ()-]{5,}\d")  # a cheap first look: most messages have none
PHONE_DIGITS = 7


def masked(text: str) -> str:
    """``text`` with what looks like an email (``j***@example.com``) or a phone number
    (``+48***56``) masked: the one filter every message quoting a file's values or
    header, or an API's words, goes through before a terminal, a log or a webhook."""
    if "@" in text:
        text = _EMAIL.sub(_mask_email, text)
    return _PHONE.sub(_mask_phone, text) if _DIGIT_RUN.search(text) else text


# Keys of a summary whose values are names the user chose (files, a mapping): secrets
# come out of them, but no phone mask goes over them (a drop named 20261207123.csv, or
# folder 1234567, is not a phone number, and a script reads these names back).
NAMES = frozenset({"file", "inputs", "mapping", "report", "errors", "summary_json", "path"})


def scrubbed(value: Any, secrets: tuple[str, ...] | list[str] = (), mask: bool = True) -> Any:
    """``value`` (a summary: dicts, lists, strings) with every secret replaced by ``***``
    and every string ``masked`` but the names under ``NAMES`` (emails still masked
    there): a path or a message that carries the key or an email must not carry it into
    a notification, a metrics file or a summary file."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "***")
        return masked(value) if mask else _EMAIL.sub(_mask_email, value) if "@" in value else value
    if isinstance(value, dict):
        return {k: scrubbed(v, secrets, mask and k not in NAMES) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrubbed(v, secrets, mask) for v in value]
    return value


def _mask_email(match: re.Match[str]) -> str:
    if match.group(1).startswith("//") and match.string[: match.start()].endswith(_DB_SCHEMES):
        return match.group(0)  # the user of a state database URL (postgresql://user@host), not an email
    return f"{match.group(1)[:1]}***@{match.group(2)}"


_DB_SCHEMES = ("postgresql:", "postgres:")


def _mask_phone(match: re.Match[str]) -> str:
    found = match.group(0)
    if sum(c.isdigit() for c in found) < PHONE_DIGITS or _DATE.search(found):
        return found
    return found[:3] + "***" + found[-2:]


class ImporterError(Exception):
    """Base of every error the importer raises on purpose. Its message is ``masked``:
    a library caller may log it, and it may quote an input's header or values."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(masked(a) if isinstance(a, str) else a for a in args))


class ConfigError(ImporterError):
    """Usage, mapping, input or configuration error, found before anything is sent."""


class MappingError(ConfigError):
    """The mapping file is invalid; the message lists every problem with its path."""


class InputError(ConfigError):
    """An input file cannot be opened, decoded or parsed."""


API_SAID = "; the API said: "


class GuardStop(ImporterError):
    """A guard rail of an unattended run stopped sending (too many rejections, a canary
    row not accepted): the run ends like the breaker's, exit 3. What follows ``API_SAID``
    in the message is the API's own words, which may echo customer data: it is printed,
    never sent in a notification (``without_api_words``)."""


def without_api_words(message: str) -> str:
    return message.split(API_SAID, 1)[0]


class StateError(ConfigError):
    """The journal in the state directory refuses this run."""


class JournalFault(ImporterError):
    """The state directory stopped accepting writes mid-run (disk full, journal deleted):
    nothing more may be sent, since nothing more could be recorded."""


class OutputError(ImporterError):
    """A report, errors file or summary could not be written (a full disk): the journal
    holds every row's state, so rerunning the same command writes it and sends nothing
    again (exit 3)."""


class ConversionError(ImporterError):
    """A value that is present does not convert to its API type.

    Attributes:
        problem: what is wrong, without the value (``does not match format %Y-%m-%d``);
            problems of one kind group together in the validate preview.
        value: the offending value, when it may be shown (never an email or a phone).
    """

    def __init__(self, problem: str, value: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.value = value

    def __str__(self) -> str:
        # Quoted only when shown: a bad column raises one of these per row, mostly unread.
        return self.problem if self.value is None else f"{shown(self.value)} {self.problem}"


def shown(value: Any) -> str:
    """Quote a value for a message, masked, and cut short so a report stays readable."""
    text = masked(str(value))
    if len(text) > MAX_SHOWN:
        text = text[: MAX_SHOWN - 3] + "..."
    return repr(text)


def echo(value: Any) -> str:
    """Quote a mapping value as YAML gave it (``5``, ``[1, 2]``, ``'yes'``), cut to
    MAX_ECHO characters: a mapping message never repeats a megabyte the user wrote."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


class TransportError(ImporterError):
    """A request got no HTTP answer (connection refused or lost, timeout).

    Attributes:
        kind: ``connect``, ``timeout``, ``disconnected`` or ``certificate``.
        fatal: retrying cannot help (the API's TLS certificate is not trusted): stop the run.
    """

    def __init__(self, kind: str, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.fatal = fatal
