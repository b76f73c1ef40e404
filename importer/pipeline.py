"""Wires the stages: source -> payload -> sender -> journal -> report.

``run_import`` and ``validate`` are the two library entry points the CLI calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, TypeVar

import orjson

from importer import remote
from importer.batch import BatchRenderer
from importer.config import RunConfig, ValidateConfig, over_share
from importer.errors import API_SAID, GuardStop, ImporterError, InputError, JournalFault, scrubbed
from importer.journal import REPORTED, Holder, Journal
from importer.ledger import identity_function
from importer.payload import PayloadBuilder
from importer.prepare import (
    Notify,
    Plan,
    estimate_rows,
    local_outputs,
    plan_line,
    prepare,
    prepare_run,
    publish,
    shown,
)
from importer.preview import ProblemSummary
from importer.progress import Progress
from importer.report import (
    ErrorsWriter,
    ReportLine,
    merged_columns,
    status_counts,
    write_json,
    write_report,
    write_report_chunks,
    writing,
)
from importer.retry import Backoff
from importer.scope import target_entry
from importer.sender import Job, Outcome, Sender, StopReason, StopToken
from importer.source import Source
from importer.throttle import WindowLimiter
from importer.transport import HttpTransport, Transport

T = TypeVar("T")
STATUS_ORDER = ("sent", "skipped", "duplicate", "invalid", "rejected", "failed", "unknown", "not_attempted")
DONE_STATUSES = ("sent", "skipped", "duplicate")  # a run whose rows are all these exits 0
RETRYABLE = ("failed", "unknown", "not_attempted")
UNKNOWN_DETAIL = (
    "the process ended while this row's request was in flight: it may or may not have arrived; "
    "check it in ECDP, then rerun with --resend-unknown if it did not"
)  # a later run can still deliver these
EXIT_SOME_NOT_SENT = 1  # rows invalid or rejected: a data problem, a retry cannot help
EXIT_TEMPFAIL = 75  # sysexits' EX_TEMPFAIL: rows a later run can deliver (an outage, retries exhausted)
LOOKUP_BATCH = 250  # rows looked up in the ledger with one query
DEFER_LIMIT = 10_000  # rows waiting on a queued twin before production waits for the twins
DEFER_POLL = 0.01  # seconds between looks at whether the twins have their outcomes
EXIT_FOR_STOP = {
    StopReason.AUTH: 3,
    StopReason.BREAKER: EXIT_TEMPFAIL,
    StopReason.SIGINT: 130,
    StopReason.SIGTERM: 143,
    StopReason.INPUT: 2,
    StopReason.STATE: 3,
    StopReason.GUARD: 3,
    StopReason.TLS: 2,
    StopReason.CALLER: 143,
    StopReason.INTERNAL: 70,  # EX_SOFTWARE, as the CLI's; the run raises the error itself
}


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
    errors: str = ""  # the --errors file, when one was written
    mapping: str = ""  # the mapping file the rows were rendered by
    target: dict[str, str] = field(default_factory=dict)  # base_url and key_fingerprint (never the key)

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
            "errors": self.errors or None,
            "inputs": self.inputs,
            "mapping": self.mapping,
            "target": self.target,
        }


def validate(config: ValidateConfig, notify: Notify | None = None) -> Summary:
    """Render every row without sending; the report says ``valid``, ``invalid`` or
    ``skipped``, and the summary groups the problems for a preview."""
    started = time.monotonic()
    config, uploads = local_outputs(config)
    builder, sources, report = prepare(config, notify)
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

    verdicts = BatchRenderer(builder).verdicts
    counts: dict[str, int] = {}

    def chunks() -> Iterator[Iterable[tuple[Any, ...]]]:
        """The report's lines, a batch at a time."""
        for source in sources:
            name = source.name
            for batch in source.batches():
                refs, others = verdicts(batch)
                valid = batch.size - len(others)
                first_valid = next((i for i, ref in enumerate(refs) if ref is not None), batch.size)
                for i, rendered in others.items():  # counts keep the order statuses first appear in
                    if first_valid < i:
                        counts.setdefault("valid", 0)
                    counts[rendered.status] = counts.get(rendered.status, 0) + 1
                    if rendered.status == "invalid":
                        problems.add(name, batch.start + i, rendered)
                if valid:
                    counts["valid"] = counts.get("valid", 0) + valid
                for i, ref in enumerate(refs):
                    if len(samples) >= config.show:
                        break
                    if ref is not None:
                        samples.append(builder.render(batch.row(i)).body or {})
                numbers = range(batch.start, batch.start + batch.size)
                if not others:  # every row valid: one tuple each, built in C
                    yield zip(repeat(name), numbers, repeat("valid"), repeat(None), repeat(""), repeat(""), repeat(0),
                              refs)  # fmt: skip
                    continue
                yield [
                    (name, number, "valid", None, "", "", 0, ref)
                    if ref is not None
                    else (name, number, others[i].status, None, "", others[i].detail, 0, others[i].customer_ref)
                    for i, (number, ref) in enumerate(zip(numbers, refs, strict=True))
                ]

    write_report_chunks(report, chunks())
    publish(uploads, config)
    return Summary(
        command="validate",
        exit_code=0 if counts.get("invalid", 0) == 0 else 1,
        counts=counts,
        duration_s=time.monotonic() - started,
        rows_this_run=sum(counts.values()),
        report=shown(uploads, report),
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
    config, uploads = local_outputs(config)
    preparing = asyncio.ensure_future(asyncio.to_thread(prepare_run, config, notify, stop))
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
            done = sum(journal.count_done(p.import_id, resend_unknown=config.resend_unknown) for p in plans)
            notify(plan_line([p.source for p in plans], config, journal.scope.target, done))
        sending = asyncio.ensure_future(run.send(transport, stop))
        while not sending.done():
            try:
                await asyncio.wait({sending})  # unlike awaiting it, a cancel here leaves it running
            except asyncio.CancelledError:  # as SIGTERM: what is on the wire finishes, then out.
                # A cancel repeated during the drain (anyio scopes cancel on every loop turn)
                # changes nothing: cutting the requests would leave their rows unknown.
                cancelled = True
                stop.stop(StopReason.CALLER)
        sender = sending.result()
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
        exit_code = finished_exit_code(counts, tolerate_invalid=config.max_invalid is not None)
    summary = Summary(
        command="run",
        exit_code=exit_code,
        counts={s: counts.get(s, 0) for s in STATUS_ORDER if counts.get(s)},
        duration_s=time.monotonic() - started,
        rows_this_run=sum(sender.outcomes.values()),
        report=shown(uploads, report),
        inputs=[_input_entry(p) for p in plans],
        requests=sender.requests,
        retries=sender.retries,
        throttled=sender.gate.decreases,
        stop_reason=sender.stop_reason.value if sender.stop_reason else None,
        message=str(run.stop_error or ""),
        errors=shown(uploads, config.errors) if config.errors else "",
        mapping=config.mapping,
        target=target_entry(journal.scope.target),
    )
    if config.summary_json:
        write_json(config.summary_json, scrubbed(summary.as_json(), (config.api_key.reveal(),)))
    publish(uploads, config)
    return summary, cancelled


def finished_exit_code(counts: dict[str, int], tolerate_invalid: bool = False) -> int:
    """A finished run's exit code: 75 when some rows can still be delivered by a later run
    (``failed``, ``unknown``, ``not_attempted``), else 1 when some are ``invalid`` or
    ``rejected`` (invalid rows not counted when ``--max-invalid`` let them through), else 0."""
    if any(counts.get(s) for s in RETRYABLE):
        return EXIT_TEMPFAIL
    if counts.get("rejected") or (counts.get("invalid") and not tolerate_invalid):
        return EXIT_SOME_NOT_SENT
    return 0


def _input_entry(plan: Plan) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": plan.source.name, "sha256": plan.fingerprint, "size": plan.size}
    if plan.source.remote is not None:
        entry["version"] = plan.source.remote.version
    return entry


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
        # Rows whose event's twin was queued: decided once the twin's outcome is known.
        self.deferred: list[tuple[Plan, int, bytes, str, bytes]] = []
        self.releasing = False  # the deferred rows are being looked at again
        self.was_held: set[tuple[int, int]] = set()  # held rows this run looks at again
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
        if limit is not None and self.attempted >= 100 and over_share(self.rejected, self.attempted, limit):
            self._guard_stop(
                f"aborted: {self.rejected:,} of {self.attempted:,} rows answered were rejected "
                f"({self.rejected / self.attempted:.1%}), more than --max-rejected {float(limit):.1%}: "
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
        if self.progress is not None:
            self.progress.activity = lambda: (sender.retries, sender.gate.decreases)

        def journal_fault(fault: JournalFault) -> None:
            self.stop_error = self.stop_error or fault
            sender.stop(StopReason.STATE)

        self.journal.on_fault = journal_fault
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=config.concurrency * 4)
        producer = asyncio.create_task(self.produce(sender, queue))
        ticker = asyncio.create_task(self._tick(self.progress, sender)) if self.progress else None
        try:
            await sender.run(queue)
            await producer
        finally:
            producer.cancel()  # a no-op once it ended; else no worker is left to take its rows
            if ticker:
                ticker.cancel()
            await transport.close()
            self.journal.flush()
            if self.progress:
                self.progress.close()
        return sender

    @staticmethod
    async def _tick(progress: Progress, sender: Sender) -> None:
        """The progress ticker; an exception in it is a bug that ends the run."""
        try:
            await progress.run()
        except Exception as exc:
            sender.fail(exc)

    async def produce(self, sender: Sender, queue: asyncio.Queue[Job | None]) -> None:
        """Feed the sender the rows that still need sending; after a stop, only count rows."""
        cancelled = False
        try:
            await self._produce(sender, queue)
        except InputError as exc:  # the input changed under us: stop like a signal
            self.stop_error = exc
            sender.stop(StopReason.INPUT)
        except JournalFault as exc:  # a look-up the rows wait on failed: stop as a commit would
            self.journal.fail(exc)
        except asyncio.CancelledError:
            cancelled = True  # by send, once the workers are gone: a put would wait for ever
            raise
        finally:
            if not cancelled:
                for _ in range(sender.concurrency):
                    await queue.put(None)

    async def _produce(self, sender: Sender, queue: asyncio.Queue[Job | None]) -> None:
        skip = {"sent", "inflight", "duplicate"}
        if not self.config.retry_rejected:
            skip.add("rejected")
        if not self.config.resend_unknown:
            skip.update(("unknown", "held"))
        count = self.progress.add if self.progress else (lambda status: None)
        render = BatchRenderer(self.builder).render
        keyed = self.builder.mapping.dedup_key is not None  # the identity reads the row's values
        for plan in self.plans:
            done = self.journal.statuses(plan.import_id)
            batch: list[tuple[int, bytes, str, bytes | None]] = []
            for rows in plan.source.batches():
                await asyncio.sleep(0)
                if sender.stopped:
                    break  # the scan counted the rows: nothing to read on for
                numbers = range(rows.start, rows.start + rows.size)
                todo = [done.get(number) not in skip for number in numbers]
                if "held" not in skip:  # --resend-unknown looks at held rows again: note which
                    self.was_held.update((plan.import_id, n) for n in numbers if done.get(n) == "held")
                rendered_rows = render(rows) if any(todo) else []
                for i, number in enumerate(numbers):
                    if sender.stopped:
                        break
                    if not todo[i]:
                        count("done_before")
                        continue
                    rendered = rendered_rows[i]
                    if rendered.body is None:
                        status = rendered.status
                        self.journal.unsent(plan.import_id, number, status, rendered.detail, rendered.customer_ref)
                        count(status)
                        continue
                    body = orjson.dumps(rendered.body)
                    if self.identify:
                        values = rows.row(i).values if keyed else {}
                        identity: bytes | None = self.identify(values, rendered.body, body)
                    else:
                        identity = None
                    batch.append((number, body, rendered.customer_ref, identity))
                    if len(batch) >= LOOKUP_BATCH:
                        await self._release(plan, batch, queue, sender, count)
                        batch = []
                if sender.stopped:
                    break
                # A batch is read ahead of its sending: the file is checked again once its
                # rows are queued, so a file still growing stops the run while rows go out.
                plan.source.check_unchanged()
            await self._release(plan, batch, queue, sender, count)
        await self._release_deferred(queue, sender, count)
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
            # Outcomes not yet committed would read as "in flight" (a rejected row as sent).
            self.journal.flush()
            self.sent_since_query.clear()  # from now on the journal shows them (in flight or sent)
            holders = self.journal.holders([b[3] for b in batch if b[3] is not None])
        for number, body, ref, identity in batch:
            if sender.stopped:
                return
            key = (plan.import_id, number)
            if lookup and identity is not None:
                if identity in self.pending_ids:
                    # Its twin is queued or on the wire: a duplicate only if that one is sent.
                    self.deferred.append((plan, number, body, ref, identity))
                    continue
                holder = holders.get(identity)
                if key in self.was_held and (holder is None or holder[:2] == key):
                    # What held it was pruned: that row's import had finished, so its outcome
                    # was settled (sent, most likely); this one is not sent on a guess.
                    self.journal.unsent(*key, "duplicate", "held by a row that has since been pruned", ref)
                    count("duplicate")
                    continue
                held = self._sent_by(identity, key, holder)
                if held:
                    self.journal.unsent(*key, *held, ref)
                    count("duplicate")
                    continue
                self.pending_ids[identity] = (*key, plan.source.name)
            if self.canary_left:
                self.canary_pending.add(key)
                self.canary_queued += 1
            await queue.put(Job(key, body, ref, identity))
            if self.canary_left and self.canary_queued >= self.canary_left:
                await self._await_canary(sender)
        # Only once the batch is through: a release in its middle would query the ledger
        # anew and leave the rest of the batch judged by a snapshot older than that.
        if len(self.deferred) >= DEFER_LIMIT and not self.releasing:
            await self._release_deferred(queue, sender, count)

    async def _release_deferred(
        self, queue: asyncio.Queue[Job | None], sender: Sender, count: Callable[[str], None]
    ) -> None:
        """Look again at the rows whose twin was queued: once every twin has its outcome,
        a twin sent makes them ``duplicate``, a twin rejected or failed lets one of them go
        (the others wait on that one in turn)."""
        self.releasing = True
        try:
            while self.deferred and not sender.stopped:
                waiting = {d[4] for d in self.deferred}
                while not sender.stopped and any(i in self.pending_ids for i in waiting):
                    await asyncio.sleep(DEFER_POLL)
                rows, self.deferred = self.deferred, []
                for plan in dict.fromkeys(d[0] for d in rows):
                    mine: list[tuple[int, bytes, str, bytes | None]] = [
                        (number, body, ref, identity) for p, number, body, ref, identity in rows if p is plan
                    ]
                    for start in range(0, len(mine), LOOKUP_BATCH):
                        await self._release(plan, mine[start : start + LOOKUP_BATCH], queue, sender, count)
        finally:
            self.releasing = False

    def _sent_by(self, identity: bytes, key: tuple[int, int], holder: Holder | None) -> tuple[str, str] | None:
        """The status and detail of a row whose event must not be sent again (``duplicate``,
        "already sent by FILE row N"; ``held`` while that row's outcome is unknown), or None
        when no other row holds it: one sent, on the wire, or unknown (unless
        --resend-unknown). A rejected, failed or invalid holder holds nothing."""
        queued = self.sent_since_query.get(identity)
        if queued is not None and queued[:2] != key:
            return "duplicate", f"already sent by {queued[2]} row {queued[1]} (this run)"
        if holder is None or holder[:2] == key:
            return None
        _, row, status, path = holder
        if status in ("sent", "inflight"):
            return "duplicate", f"already sent by {path} row {row}"
        if status == "unknown" and not self.config.resend_unknown:
            return "held", f"held by {path} row {row}, whose outcome is unknown (check it, then --resend-unknown)"
        return None


def _report_lines(journal: Journal, plans: list[Plan]) -> Iterator[ReportLine]:
    """Every row of every input, in order; rows the journal lacks were not attempted."""
    for plan in plans:
        name = plan.source.name
        total = journal.total_rows(plan.import_id)
        expected = 1
        for jr in journal.rows(plan.import_id):
            for missing in range(expected, jr.row_number):
                yield ReportLine(name, missing, "not_attempted")
            status = REPORTED.get(jr.status, jr.status)
            detail = jr.detail or (UNKNOWN_DETAIL if status == "unknown" else "")
            yield ReportLine(
                name, jr.row_number, status, jr.http_status, jr.substatus, detail, jr.attempts, jr.customer_ref
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
