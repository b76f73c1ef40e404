"""Wires the stages: source -> payload -> sender -> journal -> report.

``run_import`` and ``validate`` are the two library entry points the CLI calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from importer import remote
from importer.config import RunConfig, ValidateConfig, default_report
from importer.errors import API_SAID, ConfigError, GuardStop, ImporterError, InputError, JournalFault
from importer.journal import Holder, Journal
from importer.ledger import identity_function
from importer.mapping import load_mapping
from importer.memory import TableSource, check_import_key, is_in_memory
from importer.payload import PayloadBuilder
from importer.preview import ProblemSummary
from importer.progress import Progress, duration
from importer.report import (
    ErrorsWriter,
    ReportLine,
    check_outputs,
    is_report,
    merged_columns,
    report_format,
    status_counts,
    write_json,
    write_report,
    writing,
)
from importer.retry import Backoff
from importer.sender import Job, Outcome, Sender, StopReason, StopToken
from importer.source import Source, open_source
from importer.throttle import WindowLimiter
from importer.transport import HttpTransport, Transport, tls_context

T = TypeVar("T")
C = TypeVar("C", RunConfig, ValidateConfig)
STATUS_ORDER = ("sent", "skipped", "duplicate", "invalid", "rejected", "failed", "unknown", "not_attempted")
DONE_STATUSES = ("sent", "skipped", "duplicate")
LOOKUP_BATCH = 250  # rows looked up in the ledger with one query  # a run whose rows are all these exits 0
EXIT_FOR_STOP = {
    StopReason.AUTH: 3,
    StopReason.BREAKER: 3,
    StopReason.SIGINT: 130,
    StopReason.SIGTERM: 143,
    StopReason.INPUT: 2,
    StopReason.STATE: 3,
    StopReason.GUARD: 3,
    StopReason.TLS: 2,
    StopReason.CALLER: 143,
}
Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """One input of a run: its source and the journal's import for its content."""

    source: Source
    import_id: int
    fingerprint: str
    size: int


@dataclass(frozen=True, slots=True)
class Summary:
    command: str
    exit_code: int
    counts: dict[str, int]
    duration_s: float
    rows_this_run: int
    report: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    stop_reason: str | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    message: str = ""  # why the run stopped, when a stop has a message of its own

    @property
    def rows_per_s(self) -> float:
        return self.rows_this_run / self.duration_s if self.duration_s > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "counts": self.counts,
            "total_rows": sum(self.counts.values()),
            "duration_s": round(self.duration_s, 3),
            "rows_this_run": self.rows_this_run,
            "rows_per_s": round(self.rows_per_s, 1),
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "stop_reason": self.stop_reason,
            "report": self.report,
            "inputs": self.inputs,
        }


def _prepare(
    config: RunConfig | ValidateConfig,
    notify: Notify | None,
    known: remote.Known | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> tuple[PayloadBuilder, list[Source], str]:
    """Load and compile the mapping, open every input (checking the mapping's columns
    against each, and its age against ``--min-age``), and settle and check the output
    paths: every check before anything is sent. An object-store input is copied once to
    a local spool, unless ``known`` recognises it as a finished import."""
    builder = PayloadBuilder(load_mapping(config.mapping))
    sources: list[Source] = []
    in_memory = [i for i in config.inputs if is_in_memory(i)]
    key = check_import_key(config.import_key) if in_memory else None
    for number, given in enumerate(_expanded(config.inputs, config.source.s3_endpoint_url), start=1):
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
            continue
        builder.mapping.check_columns(source.name, source.columns)
        sources.append(source)
    if not sources:
        raise InputError("no input left to import: every input given is an ecdp-import report")
    report = config.report or _default_report(config, sources[0])
    report_format(report)
    outputs = {"--report": report}
    if isinstance(config, RunConfig):
        outputs.update({k: v for k, v in (("--errors", config.errors), ("--summary-json", config.summary_json)) if v})
    local_inputs = [s.path for s in sources if s.remote is None and not isinstance(s, TableSource)]
    check_outputs(outputs, [Path(config.mapping), *local_inputs])
    if isinstance(config, RunConfig) and config.base_url.startswith("https:"):
        tls_context(config.ca_bundle)  # a missing or broken CA bundle is a configuration error
    return builder, sources, report


def _expanded(inputs: tuple[Any, ...], s3_endpoint_url: str | None) -> list[Any]:
    """Inputs with each object-store glob replaced by its matches, in name order."""
    out: list[Any] = []
    for given in inputs:
        out.extend(remote.expand(given, s3_endpoint_url) if remote.is_url(given) else [given])
    return out


def _default_report(config: RunConfig | ValidateConfig, first: Source) -> str:
    """Beside the first input file; for in-memory data or an object of a run, in the
    state directory's ``reports``; for an object in ``validate``, in the working directory."""
    if isinstance(first, TableSource) or first.remote is not None:
        stem = first.name if isinstance(first, TableSource) else Path(first.remote.url.split("://", 1)[1]).name
        if isinstance(config, RunConfig):
            return str(Path(config.state_dir) / "reports" / f"{stem}.report.csv")
        return default_report(stem)
    return default_report(first.name)


def _local_outputs(config: C) -> tuple[C, list[tuple[str, str]]]:
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


def _publish(uploads: list[tuple[str, str]], config: RunConfig | ValidateConfig) -> None:
    """Upload the outputs written locally (a report, --errors, --summary-json)."""
    for local, url in uploads:
        if os.path.exists(local):
            remote.publish(local, url, config.source.s3_endpoint_url)


def _shown(uploads: list[tuple[str, str]], report: str) -> str:
    """The report's name as the user gave it (its URL when it is uploaded)."""
    return next((url for local, url in uploads if local == report), report)


def validate(config: ValidateConfig, notify: Notify | None = None) -> Summary:
    """Render every row without sending; the report says ``valid``, ``invalid`` or
    ``skipped``, and the summary groups the problems for a preview."""
    started = time.monotonic()
    config, uploads = _local_outputs(config)
    builder, sources, report = _prepare(config, notify)
    try:
        return _validate(config, builder, sources, report, uploads, started)
    finally:
        remote.release(sources, uploads)


def _validate(
    config: ValidateConfig,
    builder: PayloadBuilder,
    sources: list[Source],
    report: str,
    uploads: list[tuple[str, str]],
    started: float,
) -> Summary:
    samples: list[dict[str, Any]] = []
    problems = ProblemSummary()

    def lines() -> Iterator[ReportLine]:
        for source in sources:
            for row in source.rows():
                rendered = builder.render(row)
                if rendered.body is not None:
                    if len(samples) < config.show:
                        samples.append(rendered.body)
                    yield ReportLine(source.name, row.number, "valid", customer_ref=rendered.customer_ref)
                    continue
                if rendered.status == "invalid":
                    problems.add(source.name, row.number, rendered)
                yield ReportLine(
                    source.name, row.number, rendered.status, None, "", rendered.detail, 0, rendered.customer_ref
                )

    counts: dict[str, int] = {}
    write_report(report, status_counts(lines(), counts))
    _publish(uploads, config)
    return Summary(
        command="validate",
        exit_code=0 if counts.get("invalid", 0) == 0 else 1,
        counts=counts,
        duration_s=time.monotonic() - started,
        rows_this_run=sum(counts.values()),
        report=_shown(uploads, report),
        inputs=[{"file": s.name} for s in sources],
        samples=samples,
        problems=problems.lines(several_files=len(sources) > 1),
    )


def run_import(
    config: RunConfig,
    transport: Transport | None = None,
    progress: Progress | None = None,
    notify: Notify | None = None,
    stop: StopToken | None = None,
) -> Summary:
    """Send every row that still needs sending, then write the report over all runs.

    Runs its own event loop (uvloop where installed), so it works from the main thread
    and from a worker thread alike; it installs no signal handlers: ``stop.stop()`` (from
    any thread) ends the run as SIGTERM would. Inside a running loop, await
    ``arun_import`` instead. ``notify`` receives the plan line before sending;
    ``progress`` counts rows as they end.
    """
    return run_async(arun_import(config, transport, progress, notify, stop))


async def arun_import(
    config: RunConfig,
    transport: Transport | None = None,
    progress: Progress | None = None,
    notify: Notify | None = None,
    stop: StopToken | None = None,
) -> Summary:
    """``run_import`` for a running event loop. The checks and the scan before sending
    run in a worker thread, so a stop is honoured while a large input is scanned."""
    started = time.monotonic()
    stop = stop or StopToken()
    config, uploads = _local_outputs(config)
    preparing = asyncio.ensure_future(asyncio.to_thread(_prepare_run, config, notify, stop))
    try:
        prepared = await asyncio.shield(preparing)
    except asyncio.CancelledError:  # the caller's task was cancelled: stop the scan, leave
        stop.stop(StopReason.CALLER)
        left = await preparing
        if left is not None:
            left[2].close()
        raise
    if prepared is None:
        reason = stop.reason or StopReason.CALLER
        return Summary("run", EXIT_FOR_STOP[reason], {}, time.monotonic() - started, 0, "", stop_reason=reason.value)
    builder, plans, journal, report = prepared
    try:
        summary, cancelled = await _send_and_report(
            config, builder, plans, journal, report, uploads, started, transport, progress, notify, stop
        )
    finally:
        remote.release([p.source for p in plans], uploads)
    if cancelled:
        raise asyncio.CancelledError
    return summary


async def _send_and_report(
    config: RunConfig,
    builder: PayloadBuilder,
    plans: list[Plan],
    journal: Journal,
    report: str,
    uploads: list[tuple[str, str]],
    started: float,
    transport: Transport | None,
    progress: Progress | None,
    notify: Notify | None,
    stop: StopToken,
) -> tuple[Summary, bool]:
    """Send, then write the outputs; True beside the summary when the caller's task was
    cancelled (after the drain and the outputs)."""
    run = _Run(config, builder, plans, journal, progress)
    cancelled = False
    counts: dict[str, int] = {}
    try:
        if notify:
            notify(plan_line([p.source for p in plans], config))
        sending = asyncio.ensure_future(run.send(transport, stop))
        try:
            sender = await asyncio.shield(sending)
        except asyncio.CancelledError:  # as SIGTERM: what is on the wire finishes, then out
            cancelled = True
            stop.stop(StopReason.CALLER)
            sender = await sending
        for plan in plans:
            if journal.is_finished(plan.import_id):
                journal.mark_finished(plan.import_id)
        write_report(report, status_counts(_report_lines(journal, plans), counts))
        if config.errors:
            with writing(config.errors):
                _write_errors(config.errors, journal, plans)
    except BaseException:
        _salvage_report(report, journal, plans)
        raise
    finally:
        journal.close()
    if sender.stop_reason is not None:
        exit_code = EXIT_FOR_STOP[sender.stop_reason]
    else:
        done = sum(counts.get(s, 0) for s in DONE_STATUSES)
        exit_code = 0 if done == sum(counts.values()) else 1
    summary = Summary(
        command="run",
        exit_code=exit_code,
        counts={s: counts.get(s, 0) for s in STATUS_ORDER if counts.get(s)},
        duration_s=time.monotonic() - started,
        rows_this_run=sum(sender.outcomes.values()),
        report=_shown(uploads, report),
        inputs=[_input_entry(p) for p in plans],
        requests=sender.requests,
        retries=sender.retries,
        throttled=sender.gate.decreases,
        stop_reason=sender.stop_reason.value if sender.stop_reason else None,
        message=str(run.stop_error or ""),
    )
    if config.summary_json:
        write_json(config.summary_json, summary.as_json())
    _publish(uploads, config)
    return summary, cancelled


def _input_entry(plan: Plan) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": plan.source.name, "sha256": plan.fingerprint, "size": plan.size}
    if plan.source.remote is not None:
        entry["version"] = plan.source.remote.version
    return entry


def _prepare_run(
    config: RunConfig, notify: Notify | None, stop: StopToken
) -> tuple[PayloadBuilder, list[Plan], Journal, str] | None:
    """Everything before the first request: checks, the journal, the scan of every
    input. None when a stop came first (nothing was sent). The journal is opened after
    the mapping and local inputs are checked (a bad mapping leaves no state directory
    behind), or at the first object-store input (to know whether it needs downloading)."""
    opened: list[Journal] = []

    def journal_now() -> Journal:
        if not opened:
            opened.append(Journal(config.state_dir, durable=config.durable))
        return opened[0]

    try:
        builder, sources, report = _prepare(config, notify, _known(journal_now, config), lambda: stop.stopped)
        journal = journal_now()
        plans = _plan(journal, sources, config.new_import, stop)
        if plans is not None and not journal.verified(lambda: stop.stopped):
            plans = None
        limit = config.max_invalid
        if plans is not None and limit is not None and not _check_invalid_share(builder, plans, limit, stop):
            plans = None
    except BaseException:
        if opened:
            opened[0].close()
        raise
    if plans is None:
        journal.close()
        return None
    return builder, plans, journal, report


def _known(journal: Callable[[], Journal], config: RunConfig) -> remote.Known | None:
    """Recognises an object version whose import finished: it is not downloaded again.
    Not when its rows could be wanted again (--retry-rejected, --errors, --max-invalid)."""
    if config.retry_rejected or config.errors or config.max_invalid is not None:
        return None

    def known(obj: remote.RemoteObject) -> tuple[str, int] | None:
        return journal().finished_object(obj.url, obj.version, obj.size)

    return known


def _check_invalid_share(builder: PayloadBuilder, plans: list[Plan], limit: float, stop: StopToken) -> bool:
    """``--max-invalid``: render every row once before sending; refuse the whole run
    (nothing sent) when the invalid share is over the limit. False when a stop came."""
    invalid = total = 0
    for plan in plans:
        for row in plan.source.rows():
            total += 1
            if total % 4096 == 0 and stop.stopped:
                return False
            if builder.render(row).status == "invalid":
                invalid += 1
    if total and invalid / total > limit:
        raise InputError(
            f"{invalid:,} of {total:,} rows ({invalid / total:.1%}) are invalid, more than --max-invalid "
            f"{limit:.1%}: nothing was sent; `ecdp-import validate` lists the problems"
        )
    return True


def _salvage_report(report: str, journal: Journal, plans: list[Plan]) -> None:
    """After an unexpected error, still leave the report the journal can give."""
    try:
        journal.flush()
        write_report(report, _report_lines(journal, plans))
    except Exception:
        pass


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it is installed: aiohttp's per-request cost drops by about a third."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def rate_limiter(rate: float) -> WindowLimiter:
    """At most ``rate`` starts a second: ``int(rate)`` per second, or one per ``1/rate``
    seconds below 1/s. The 2 % longer window absorbs the jitter between a start here and
    its arrival at the API, which is where the limit is measured."""
    if rate >= 1:
        return WindowLimiter(int(rate), window=1.02)
    return WindowLimiter(1, window=1.02 / rate)


def estimate_rows(sources: list[Source]) -> tuple[int, bool]:
    """Rows in the inputs, and whether that count is exact (Parquet, or CSV read whole)."""
    return sum(s.estimate_rows() for s in sources), all(s.total_rows is not None for s in sources)


def plan_line(sources: list[Source], config: RunConfig) -> str:
    """``plan: ~1,200,000 rows at concurrency 8, <= 20 req/s ≈ 16 h 40 min``."""
    rows, exact = estimate_rows(sources)
    approx = "" if exact else "~"
    text = f"plan: {approx}{rows:,} rows at concurrency {config.concurrency}, "
    if config.rate_limit:
        text += f"<= {config.rate_limit:g} req/s ≈ {duration(rows / config.rate_limit)} at the least"
    else:
        text += "no rate limit"
    if config.no_dedup:
        text += "; dedup off (--no-dedup): events already sent are sent again"
    return text + f"; state directory {config.state_dir}"


def _plan(journal: Journal, sources: list[Source], new_import: bool, stop: StopToken) -> list[Plan] | None:
    plans: list[Plan] = []
    seen: dict[str, str] = {}
    for source in sources:
        content = source.scan(lambda: stop.stopped)  # the whole file once: its hash, its rows, its structure
        if stop.stopped:
            return None
        if content in seen:
            raise ConfigError(f"{source.name} has the same content as {seen[content]}; pass it once")
        seen[content] = source.name
        size = source.stamp.size
        keyed = isinstance(source, TableSource)  # an import key: other content under it is refused
        import_id = journal.resolve_import(source.origin, content, size, new_import, strict=keyed)
        if source.remote is not None:
            journal.remember_object(source.remote.url, source.remote.version, source.remote.size, import_id)
        journal.set_total(import_id, source.estimate_rows())  # exact after the scan
        plans.append(Plan(source, import_id, content, size))
    return plans


class _Run:
    """One run's wiring: the producer feeding the sender, whose hooks journal each row."""

    def __init__(
        self, config: RunConfig, builder: PayloadBuilder, plans: list[Plan], journal: Journal, progress: Progress | None
    ) -> None:
        self.config = config
        self.builder = builder
        self.plans = plans
        self.journal = journal
        self.progress = progress
        self.stop_error: ImporterError | None = None  # a stop with a message of its own
        self.sender: Sender | None = None
        self.attempted = 0  # rows with a final answer this run (sent, rejected, failed)
        self.rejected = 0
        self.canary_left = config.canary  # rows still to queue as canaries
        self.canary_queued = 0
        self.canary_pending: set[tuple[int, int]] = set()
        self.canary_results: list[tuple[Job, Outcome]] = []
        self.canary_done = asyncio.Event()
        mapping = builder.mapping
        self.identify = identity_function(mapping.path, mapping.dedup, mapping.dedup_key)
        # Identities of rows queued or on the wire in this run, not yet final in the journal:
        # a second identical row must not slip past the first before it is recorded.
        self.pending_ids: dict[bytes, tuple[int, int, str]] = {}
        # Sent since the last ledger query: that query's snapshot does not show them yet.
        self.sent_since_query: dict[bytes, tuple[int, int, str]] = {}
        if progress is not None:
            progress.total = lambda: estimate_rows([p.source for p in plans])

    async def started(self, job: Job) -> None:
        await self.journal.started(job)

    def retrying(self, job: Job, outcome: Outcome) -> None:
        self.journal.finished(job, outcome)

    def finished(self, job: Job, outcome: Outcome) -> None:
        self.journal.finished(job, outcome)
        self.attempted += 1
        if outcome.status == "rejected":
            self.rejected += 1
            self._watch_rejections()
        if job.key in self.canary_pending:
            self.canary_pending.discard(job.key)
            self.canary_results.append((job, outcome))
            if not self.canary_pending:
                self.canary_done.set()
        if job.identity is not None:
            entry = self.pending_ids.pop(job.identity, None)
            if entry is not None and outcome.status == "sent":
                self.sent_since_query[job.identity] = entry
        if self.progress is not None:
            self.progress.add(outcome.status)

    def _guard_stop(self, message: str) -> None:
        if self.sender is not None and not self.sender.stopped:
            self.stop_error = self.stop_error or GuardStop(message)
            self.sender.stop(StopReason.GUARD)

    def _watch_rejections(self) -> None:
        """``--max-rejected``: after 100 answers, a rejected share over the limit stops."""
        limit = self.config.max_rejected
        if limit is not None and self.attempted >= 100 and self.rejected / self.attempted > limit:
            self._guard_stop(
                f"aborted: {self.rejected:,} of {self.attempted:,} rows answered were rejected "
                f"({self.rejected / self.attempted:.1%}), more than --max-rejected {limit:.1%}: "
                "sending stopped; the report has the API's details"
            )

    async def _await_canary(self, sender: Sender) -> None:
        """``--canary N``: hold the rest until the first N rows are answered; go on only
        if every one of them was accepted."""
        self.canary_left = 0
        while self.canary_pending and not sender.stopped:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.canary_done.wait(), 0.2)
        bad = [(job, o) for job, o in self.canary_results if o.status != "sent"]
        if bad:
            first = "; ".join(
                f"row {job.key[1]}: {o.status}" + (f" HTTP {o.http_status}" if o.http_status else "") + f" {o.detail}"
                for job, o in bad[:3]
            )
            self._guard_stop(
                f"aborted: --canary {self.config.canary}: {len(bad)} of the first {len(self.canary_results)} "
                f"rows were not accepted, so the rest was not sent{API_SAID}{first}"
            )

    async def send(self, transport: Transport | None, stop: StopToken) -> Sender:
        config = self.config
        transport = transport or HttpTransport(
            config.base_url, config.api_key.reveal(), config.timeout, config.concurrency, config.ca_bundle
        )
        limiter = rate_limiter(config.rate_limit) if config.rate_limit else None
        sender = Sender(
            transport,
            self.builder.mapping.path,
            self,
            concurrency=config.concurrency,
            max_attempts=config.max_attempts,
            backoff=Backoff(config.backoff_base, config.backoff_max),
            limiter=limiter,
        )
        self.sender = sender
        stop.attach(sender)

        def journal_fault(fault: JournalFault) -> None:
            self.stop_error = self.stop_error or fault
            sender.stop(StopReason.STATE)

        self.journal.on_fault = journal_fault
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=config.concurrency * 4)
        producer = asyncio.create_task(self.produce(sender, queue))
        ticker = asyncio.create_task(self.progress.run()) if self.progress else None
        try:
            await sender.run(queue)
            await producer
        finally:
            if ticker:
                ticker.cancel()
            await transport.close()
            self.journal.flush()
            if self.progress:
                self.progress.close()
        return sender

    async def produce(self, sender: Sender, queue: asyncio.Queue[Job | None]) -> None:
        """Feed the sender the rows that still need sending; after a stop, only count rows."""
        try:
            await self._produce(sender, queue)
        except InputError as exc:  # the input changed under us: stop like a signal
            self.stop_error = exc
            sender.stop(StopReason.INPUT)
        finally:
            for _ in range(sender.concurrency):
                await queue.put(None)

    async def _produce(self, sender: Sender, queue: asyncio.Queue[Job | None]) -> None:
        skip = {"sent", "inflight"}
        if not self.config.retry_rejected:
            skip.add("rejected")
        if not self.config.resend_unknown:
            skip.add("unknown")
        count = self.progress.add if self.progress else (lambda status: None)
        render = self.builder.render
        for plan in self.plans:
            done = self.journal.statuses(plan.import_id)
            batch: list[tuple[int, bytes, str, bytes | None]] = []
            for row in plan.source.rows():
                if row.number % 1024 == 0:
                    await asyncio.sleep(0)
                if sender.stopped:
                    break  # the scan counted the rows: nothing to read on for
                if done.get(row.number) in skip:
                    count("done_before")
                    continue
                rendered = render(row)
                if rendered.body is None:
                    status = rendered.status
                    self.journal.unsent(plan.import_id, row.number, status, rendered.detail, rendered.customer_ref)
                    count(status)
                    continue
                body = orjson.dumps(rendered.body)
                identity = self.identify(row.values, rendered.body, body) if self.identify else None
                batch.append((row.number, body, rendered.customer_ref, identity))
                if len(batch) >= LOOKUP_BATCH:
                    await self._release(plan, batch, queue, sender, count)
                    batch = []
            await self._release(plan, batch, queue, sender, count)
        if self.canary_left and self.canary_queued:  # fewer rows than --canary: all were canaries
            await self._await_canary(sender)

    async def _release(
        self,
        plan: Plan,
        batch: list[tuple[int, bytes, str, bytes | None]],
        queue: asyncio.Queue[Job | None],
        sender: Sender,
        count: Callable[[str], None],
    ) -> None:
        """Queue rendered rows, after one ledger query for the whole batch: a row whose
        event is already sent (or queued in this run) becomes ``duplicate`` instead."""
        lookup = self.identify is not None and not self.config.no_dedup
        holders: dict[bytes, Holder] = {}
        if lookup and batch:
            self.sent_since_query.clear()  # from now on the journal shows them (in flight or sent)
            holders = self.journal.holders([b[3] for b in batch if b[3] is not None])
        for number, body, ref, identity in batch:
            if sender.stopped:
                return
            key = (plan.import_id, number)
            if lookup and identity is not None:
                sent_by = self._sent_by(identity, key, holders.get(identity))
                if sent_by:
                    self.journal.unsent(*key, "duplicate", sent_by, ref)
                    count("duplicate")
                    continue
                self.pending_ids[identity] = (*key, plan.source.name)
            if self.canary_left:
                self.canary_pending.add(key)
                self.canary_queued += 1
            await queue.put(Job(key, body, ref, identity))
            if self.canary_left and self.canary_queued >= self.canary_left:
                await self._await_canary(sender)

    def _sent_by(self, identity: bytes, key: tuple[int, int], holder: Holder | None) -> str:
        """Why this row's event must not be sent again ("already sent by FILE row N"), or ""
        when no other row holds it: one sent, on the wire, in this run's queue, or unknown
        (unless --resend-unknown). A rejected, failed or invalid holder holds nothing."""
        queued = self.pending_ids.get(identity) or self.sent_since_query.get(identity)
        if queued is not None and queued[:2] != key:
            return f"already sent by {queued[2]} row {queued[1]} (this run)"
        if holder is None or holder[:2] == key:
            return ""
        _, row, status, path = holder
        if status in ("sent", "inflight"):
            return f"already sent by {path} row {row}"
        if status == "unknown" and not self.config.resend_unknown:
            return f"held by {path} row {row}, whose outcome is unknown (check it, then --resend-unknown)"
        return ""


def _report_lines(journal: Journal, plans: list[Plan]) -> Iterator[ReportLine]:
    """Every row of every input, in order; rows the journal lacks were not attempted."""
    for plan in plans:
        name = plan.source.name
        total = journal.total_rows(plan.import_id)
        expected = 1
        for jr in journal.rows(plan.import_id):
            for missing in range(expected, jr.row_number):
                yield ReportLine(name, missing, "not_attempted")
            status = "unknown" if jr.status == "inflight" else jr.status
            yield ReportLine(
                name, jr.row_number, status, jr.http_status, jr.substatus, jr.detail, jr.attempts, jr.customer_ref
            )
            expected = jr.row_number + 1
        for missing in range(expected, (total or 0) + 1):
            yield ReportLine(name, missing, "not_attempted")


def _write_errors(path: str, journal: Journal, plans: list[Plan]) -> None:
    """Re-read the inputs and copy out the rows that are invalid or rejected now."""
    writer = ErrorsWriter(path, merged_columns(p.source.columns for p in plans))
    try:
        for plan in plans:
            problems = {
                jr.row_number: (jr.status, jr.detail)
                for jr in journal.rows(plan.import_id)
                if jr.status in ("invalid", "rejected")
            }
            if not problems:
                continue
            for row in plan.source.rows():
                if row.number in problems:
                    writer.write(row, *problems[row.number])
    finally:
        writer.close()
