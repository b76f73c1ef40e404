"""Everything before the first request: the mapping, the inputs (files, object-store
URLs, in-memory tables) and their checks, the output paths, the journal and the scan of
every input (its content hash, row count and structure), and ``--max-invalid``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import orjson

from importer import remote
from importer.batch import BatchRenderer
from importer.config import RunConfig, ValidateConfig, default_report, over_share
from importer.errors import InputError
from importer.journal import Journal, Verify
from importer.ledger import body_identity, identity_function
from importer.mapping import load_mapping
from importer.memory import TableSource, check_import_key, is_in_memory
from importer.payload import PayloadBuilder
from importer.postgres import PgJournal
from importer.postgres import shown_url as shown_state_url
from importer.progress import duration
from importer.report import check_outputs, is_report, report_format
from importer.scope import Target, scope_of
from importer.sender import StopToken
from importer.source import Source, open_source
from importer.transport import tls_context

C = TypeVar("C", RunConfig, ValidateConfig)
Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """One input of a run: its source and the journal's import for its content."""

    source: Source
    import_id: int
    fingerprint: str
    size: int


def prepare(
    config: RunConfig | ValidateConfig,
    notify: Notify | None,
    known: remote.Known | None = None,
    stopped: Callable[[], bool] = lambda: False,
    builder: PayloadBuilder | None = None,
) -> tuple[PayloadBuilder, list[Source], str]:
    """Load and compile the mapping (unless ``builder`` has it), open every input (checking
    the mapping's columns against each, and its age against ``--min-age``), and settle and
    check the output paths: every check before anything is sent. An object-store input is
    copied once to a local spool, unless ``known`` recognises it as a finished import."""
    builder = builder or PayloadBuilder(load_mapping(config.mapping))
    sources: list[Source] = []
    try:
        return _open_inputs(config, notify, known, stopped, builder, sources)
    except BaseException:
        remote.release(sources)  # the copies of objects opened before the failure
        raise


def _open_inputs(
    config: RunConfig | ValidateConfig,
    notify: Notify | None,
    known: remote.Known | None,
    stopped: Callable[[], bool],
    builder: PayloadBuilder,
    sources: list[Source],
) -> tuple[PayloadBuilder, list[Source], str]:
    in_memory = [i for i in config.inputs if is_in_memory(i)]
    given_key = config.import_key
    if given_key is None and isinstance(config, ValidateConfig):
        given_key = "memory"  # validate records nothing: the key only names the input in the report
    key = check_import_key(given_key) if in_memory else None
    for number, given in enumerate(expanded(config.inputs, config.source.s3_endpoint_url), start=1):
        if is_in_memory(given):
            name = key if len(in_memory) == 1 else f"{key}#{number}"
            source: Source = TableSource(given, str(name))
        elif remote.is_url(given):
            name = given
            source = remote.open_object(name, config.source, known, stopped)
            if isinstance(source, remote.FinishedObject):
                sources.append(source)
                continue
        else:
            name = os.fspath(given)
            source = open_source(name, config.source.encoding, config.source.delimiter)
            remote.check_age(name, source.stamp.mtime_ns / 1e9, config.source.min_age)
        if is_report(source.columns):
            # Last night's default report sits beside the drops: `run drops/*.csv` matches it.
            if notify:
                notify(f"skipping {name}: it is a report written by ecdp-import, not an input")
            remote.release([source])
            continue
        builder.mapping.check_columns(source.name, source.columns)
        source.check_types(builder.mapping.columns())
        sources.append(source)
    if not sources:
        raise InputError("no input left to import: every input given is an ecdp-import report")
    report = config.report or default_report_for(config, sources[0])
    report_format(report)
    outputs = {"--report": report}
    if isinstance(config, RunConfig):
        outputs.update({k: v for k, v in (("--errors", config.errors), ("--summary-json", config.summary_json)) if v})
    local_inputs = [s.path for s in sources if s.remote is None and not isinstance(s, TableSource)]
    check_outputs(outputs, [Path(config.mapping), *local_inputs])
    if isinstance(config, RunConfig) and config.base_url.startswith("https:"):
        tls_context(config.ca_bundle)  # a missing or broken CA bundle is a configuration error
    return builder, sources, report


def expanded(inputs: tuple[Any, ...], s3_endpoint_url: str | None) -> list[Any]:
    """Inputs with each object-store glob replaced by its matches, in name order."""
    out: list[Any] = []
    for given in inputs:
        out.extend(remote.expand(given, s3_endpoint_url) if remote.is_url(given) else [given])
    return out


def default_report_for(config: RunConfig | ValidateConfig, first: Source) -> str:
    """Beside the first input file (``.report.csv`` for ``run``, ``.validate.csv`` for
    ``validate``); for in-memory data or an object of a run, in the state directory's
    ``reports``; for an object in ``validate``, in the working directory."""
    if isinstance(first, TableSource) or first.remote is not None:
        stem = first.name if isinstance(first, TableSource) else Path(first.remote.url.split("://", 1)[1]).name
        if isinstance(config, RunConfig):
            return str(Path(config.state_dir) / "reports" / f"{stem}.report.csv")
        return default_report(stem, "validate")
    return default_report(first.name, "report" if isinstance(config, RunConfig) else "validate")


def local_outputs(config: C) -> tuple[C, list[tuple[str, str]]]:
    """Outputs given as object-store URLs are written to local files first, then
    uploaded when the run ends: (the config pointing at the local files, the uploads)."""
    changes: dict[str, Any] = {}
    for field_name in ("report", "errors", "summary_json"):
        value = getattr(config, field_name, None)
        if value and remote.is_url(value):
            remote.filesystem(value, config.source.s3_endpoint_url)  # a missing extra: exit 2 now
            changes[field_name] = remote.local_output(value)
    uploads = [(local, getattr(config, name)) for name, local in changes.items()]
    return (dataclasses.replace(config, **changes) if changes else config), uploads


def publish(uploads: list[tuple[str, str]], config: RunConfig | ValidateConfig) -> None:
    """Upload the outputs written locally (a report, --errors, --summary-json)."""
    for local, url in uploads:
        if os.path.exists(local):
            remote.publish(local, url, config.source.s3_endpoint_url)


def shown(uploads: list[tuple[str, str]], report: str) -> str:
    """The report's name as the user gave it (its URL when it is uploaded)."""
    return next((url for local, url in uploads if local == report), report)


def prepare_run(
    config: RunConfig, notify: Notify | None, stop: StopToken
) -> tuple[PayloadBuilder, list[Plan], Journal, str] | None:
    """Everything before the first request: checks, the journal, the scan of every
    input. None when a stop came first (nothing was sent). The journal is opened after
    the mapping and local inputs are checked (a bad mapping leaves no state directory
    behind), or at the first object-store input (to know whether it needs downloading)."""
    opened: list[Journal] = []
    builder = PayloadBuilder(load_mapping(config.mapping))
    scope = scope_of(builder.mapping, config.base_url, config.api_key.reveal())

    def journal_now() -> Journal:
        if not opened:
            journal = open_journal(config)
            opened.append(journal)
            journal.use_scope(scope)
        return opened[0]

    try:
        known = known_objects(journal_now, config)
        builder, sources, report = prepare(config, notify, known, lambda: stop.stopped, builder)
        journal = journal_now()
        plans = plan_inputs(journal, sources, config.new_import, stop, notify, builder)
        if plans is not None and not journal.verified(lambda: stop.stopped):
            plans = None
        limit = config.max_invalid
        if plans is not None and limit is not None and not check_invalid_share(builder, plans, limit, stop):
            plans = None
    except BaseException as exc:
        if opened:
            opened[0].close()
        if isinstance(exc, remote.Stopped):  # a stop while an object was copied: nothing sent
            return None
        raise
    if plans is None:
        journal.close()
        return None
    return builder, plans, journal, report


def known_objects(journal: Callable[[], Journal], config: RunConfig) -> remote.Known | None:
    """Recognises an object version whose import (under this mapping and target) finished:
    it is not downloaded again. Not when its rows could be wanted again (--retry-rejected,
    --resend-unknown, --errors, --max-invalid)."""
    if config.retry_rejected or config.resend_unknown or config.errors or config.max_invalid is not None:
        return None

    def known(obj: remote.RemoteObject) -> tuple[str, int] | None:
        return journal().finished_object(obj.url, obj.version, obj.size)

    return known


def check_invalid_share(builder: PayloadBuilder, plans: list[Plan], limit: float | Fraction, stop: StopToken) -> bool:
    """``--max-invalid``: render every row once before sending; refuse the whole run
    (nothing sent) when the invalid share is over the limit. False when a stop came."""
    invalid = total = 0
    verdicts = BatchRenderer(builder).verdicts
    for plan in plans:
        for batch in plan.source.batches():
            if stop.stopped:
                return False
            total += batch.size
            invalid += sum(r.status == "invalid" for r in verdicts(batch)[1].values())
    if total and over_share(invalid, total, limit):
        raise InputError(
            f"{invalid:,} of {total:,} rows ({invalid / total:.1%}) are invalid, more than --max-invalid "
            f"{float(limit):.1%}: nothing was sent; `ecdp-import validate` lists the problems"
        )
    return True


def renders_as(builder: PayloadBuilder, source: Source) -> Verify:
    """Whether ``builder`` makes of ``source``'s rows the events a ledger sample names
    ((identity, row number) pairs): the body's digest, or the dedup key's."""
    endpoint = builder.mapping.path
    keyed = identity_function(endpoint, True, builder.mapping.dedup_key)
    assert keyed is not None

    def check(sample: list[tuple[bytes, int]]) -> bool:
        wanted = {number: identity for identity, number in sample}
        last = max(wanted)
        for row in source.rows():
            if row.number > last:
                break
            if row.number in wanted:
                body = builder.render(row).body
                if body is None:
                    return False
                raw = orjson.dumps(body)
                if wanted.pop(row.number) not in (body_identity(endpoint, raw), keyed(row.values, body, raw)):
                    return False
        return not wanted

    return check


def estimate_rows(sources: list[Source]) -> tuple[int, bool]:
    """Rows in the inputs, and whether that count is exact (Parquet, or CSV read whole)."""
    return sum(s.estimate_rows() for s in sources), all(s.total_rows is not None for s in sources)


def plan_line(sources: list[Source], config: RunConfig, target: Target, done_before: int = 0) -> str:
    """``plan: ~1,200,000 rows at concurrency 8, <= 20 req/s ≈ 16 h 40 min; ...``, with
    the mapping, the target and the state directory. On a resumed import, the rows
    still to go (the estimate is for those, not the whole file)."""
    total, exact = estimate_rows(sources)
    rows = max(total - done_before, 0)
    approx = "" if exact else "~"
    resumed = f" left of {approx}{total:,} ({done_before:,} done before)" if done_before else ""
    text = f"plan: {approx}{rows:,} rows{resumed} at concurrency {config.concurrency}, "
    if config.rate_limit:
        text += f"<= {config.rate_limit:g} req/s ≈ {duration(rows / config.rate_limit)} at the least"
    else:
        text += "no rate limit"
    if config.no_dedup:
        text += "; dedup off (--no-dedup): events already sent are sent again"
    return text + f"; mapping {config.mapping}; to {target.describe()}; {state_description(config)}"


def open_journal(config: RunConfig) -> Journal:
    """The run's store: the PostgreSQL schema of ``state_url``, else the state directory."""
    if config.state_url:
        return PgJournal(config.state_url, config.state_schema)
    return Journal(config.state_dir, durable=config.durable)


def state_description(config: RunConfig) -> str:
    if config.state_url:
        return f"state database {shown_state_url(config.state_url)} (schema {config.state_schema})"
    return f"state directory {config.state_dir}"


def plan_inputs(
    journal: Journal,
    sources: list[Source],
    new_import: bool,
    stop: StopToken,
    notify: Notify | None = None,
    builder: PayloadBuilder | None = None,
) -> list[Plan] | None:
    """Scan every input and resolve its import. An input with the same content as an
    earlier one of this run (a re-delivered drop matched by the same glob) is the same
    import: it is imported once, under the first name, and the others are skipped."""
    plans: list[Plan] = []
    seen: dict[str, str] = {}
    for source in sources:
        content = source.scan(lambda: stop.stopped)  # the whole file once: its hash, its rows, its structure
        if stop.stopped:
            return None
        if content in seen:
            if notify:
                notify(f"skipping {source.name}: the same content as {seen[content]}, which this run imports")
            remote.release([source])
            continue
        seen[content] = source.name
        size = source.stamp.size
        keyed = isinstance(source, TableSource)  # an import key: other content under it is refused
        verify = renders_as(builder, source) if builder is not None else None
        import_id = journal.resolve_import(source.origin, content, size, new_import, strict=keyed, renders_as=verify)
        if source.remote is not None:
            journal.remember_object(source.remote.url, source.remote.version, source.remote.size, import_id)
        journal.set_total(import_id, source.estimate_rows())  # exact after the scan
        plans.append(Plan(source, import_id, content, size))
    return plans
