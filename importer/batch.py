"""Render rows a batch at a time: the same ``Rendered`` as ``PayloadBuilder.render``, faster.

Each mapped column is converted once per batch, column by column, through a cache keyed
on the raw text (exports repeat dates, amounts, flags and phone numbers; the converters
are pure functions of the text, so a cached answer is the answer). A row whose every
step succeeds is assembled here; any other row (a failed conversion, a required value
missing, no identifier, a broken record) is rendered again by ``PayloadBuilder.render``,
which words its problems: the one renderer stays the reference for every message.
Mappings with filters, and the segments endpoint, go row by row.

``tests/test_batch.py`` checks, on generated and hostile rows, that both renderers give
equal results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from itertools import repeat
from typing import Any

from importer.convert import convert_string
from importer.errors import ConversionError
from importer.identity import normalise_email, normalise_emails, to_crm_id, to_crm_ids, to_e164, to_e164s
from importer.payload import PayloadBuilder, Rendered, customer_ref, positive_int32
from importer.source import Batch

CACHE_LIMIT = 1 << 17  # entries a column's cache holds before it starts over
TRIAL_VALUES = 1 << 15  # a column's cache is dropped when, after this many values,
USEFUL_HITS = 0.1  # fewer than this share were found in it (ids, emails: all distinct)
_FAIL = object()  # a value whose conversion failed: its row goes to the row renderer
_MISS = object()  # not in the cache yet


# Converters that also convert a whole column of texts at once (None: one of them fails).
# A converter that is a partial (a phone's default region) gets its vector with the same
# keyword arguments.
VECTORS: dict[Callable[..., Any], Callable[..., list[Any] | None]] = {
    convert_string: list,
    normalise_email: normalise_emails,
    to_crm_id: to_crm_ids,
    to_e164: to_e164s,
}


def vector_of(convert: Callable[[Any], Any]) -> Callable[[Sequence[str]], list[Any] | None] | None:
    """The whole-column form of ``convert``, if it has one."""
    if isinstance(convert, partial) and not convert.args and convert.func in VECTORS:
        return partial(VECTORS[convert.func], **convert.keywords)
    return VECTORS.get(convert)


class _Cached:
    """A converter with a cache of its answers for text values. Only ``str`` keys: a
    Parquet ``1``, ``1.0`` and ``True`` are equal as keys but convert differently."""

    __slots__ = ("cache", "convert", "misses", "seen", "vector")

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        self.convert = convert
        self.vector = vector_of(convert)
        self.cache: dict[str | None, Any] | None = None if self.vector else {None: None}
        self.seen = self.misses = 0

    def column(self, values: Sequence[Any], required: bool, bad: set[int]) -> list[Any]:
        """The converted values (None where absent); rows that fail join ``bad``."""
        if required and None in values:
            bad.update(i for i, value in enumerate(values) if value is None)
        if self.vector is not None and set(map(type, values)) == {str}:
            converted = self.vector(values)
            if converted is not None:
                return converted
        cache, one = self.cache, self.one
        if cache is None:
            convert = self.convert
            try:  # most values convert: no wrapper call per value then
                out = [None if value is None else convert(value) for value in values]
            except ConversionError:
                out = [one(value) for value in values]
        else:
            try:
                out = list(map(cache.get, values, repeat(_MISS)))  # None is a key: absent stays None
            except TypeError:  # an unhashable value (a Parquet list)
                out = [_MISS] * len(values)
            misses = 0
            if _MISS in out:
                for i, wire in enumerate(out):
                    if wire is _MISS:
                        value = values[i]
                        if type(value) is not str:
                            out[i] = one(value)
                            continue
                        wire = cache.get(value, _MISS)  # met earlier in this batch
                        if wire is _MISS:
                            misses += 1
                            wire = one(value)
                            if len(cache) >= CACHE_LIMIT:
                                cache.clear()
                                cache[None] = None
                            cache[value] = wire
                        out[i] = wire
            self._judge(len(values), misses)
        if _FAIL in out:
            bad.update(i for i, wire in enumerate(out) if wire is _FAIL)
        return out

    def one(self, value: Any) -> Any:
        """One value converted: None when absent, _FAIL when it cannot be."""
        if value is None:
            return None
        try:
            return self.convert(value)
        except ConversionError:
            return _FAIL

    def _judge(self, seen: int, misses: int) -> None:
        """Drop the cache of a column whose values hardly repeat: it only costs there."""
        if self.seen < TRIAL_VALUES:
            self.seen += seen
            self.misses += misses
            if self.seen >= TRIAL_VALUES and self.misses > self.seen * (1 - USEFUL_HITS):
                self.cache = None


class BatchRenderer:
    """``render(batch)`` equals ``[builder.render(row) for row in batch.rows()]``."""

    def __init__(self, builder: PayloadBuilder) -> None:
        self.builder = builder
        mapping = builder.mapping
        self.row_by_row = bool(mapping.filters) or mapping.endpoint == "segments"
        self._event = _Cached(lambda v: positive_int32(v, "custom event id"))
        # One cache per email column (normalised once, whatever derives from it), and
        # one per other identifier and per data-field column.
        self._emails = {s.column: _Cached(normalise_email) for s in builder.idents if s.from_email}
        self._idents = [(s, None if s.from_email else _Cached(s.convert)) for s in builder.idents]
        self._fields = [(s, None if isinstance(s, dict) else _Cached(s.convert)) for s in builder.fields]
        self._hashes = {s.body_key: s.convert for s in builder.idents if s.from_email}  # for refs

    def render(self, batch: Batch) -> list[Rendered]:
        """Every row's ``Rendered``, as ``PayloadBuilder.render`` gives it."""
        render_row = self.builder.render
        if self.row_by_row:
            return [render_row(row) for row in batch.rows()]
        events, idents, fields, bad = self._convert(batch, derive=True)
        out: list[Rendered] = []
        append = out.append
        for i in range(batch.size):
            if i in bad:
                append(render_row(batch.row(i)))
                continue
            body: dict[str, Any] = {"customEventId": events[i]}
            for key, values in idents:
                value = values[i]
                if value is not None:
                    body[key] = value
            if len(body) == 1:  # no identifier: the row renderer words it
                append(render_row(batch.row(i)))
                continue
            data: list[dict[str, str]] = []
            for head, wires in fields:
                if wires is None:
                    data.append(head)
                elif wires[i] is not None:
                    data.append({"name": head.name, "type": head.type, "value": wires[i]})
            if data:
                body["dataFields"] = data
            append(Rendered(body, (), customer_ref(body)))
        return out

    def verdicts(self, batch: Batch) -> tuple[list[str | None], dict[int, Rendered]]:
        """What ``validate`` needs, without building bodies: the customer_ref of each
        valid row (None for the others), and the ``Rendered`` of every other row."""
        if self.row_by_row:
            rendered = self.render(batch)
            return (
                [r.customer_ref if r.body is not None else None for r in rendered],
                {i: r for i, r in enumerate(rendered) if r.body is None},
            )
        _, idents, _, bad = self._convert(batch, derive=False)
        columns = [values for _, values in idents]
        by_key = dict(idents)
        # customer_ref's order; an email's hashes are derived only for the rows that need them.
        crm, cid = by_key.get("customerCrmId"), by_key.get("customerId")
        sha, email, md5 = (by_key.get(k) for k in ("customerEmailSha256", "customerEmail", "customerEmailMd5"))
        refs: list[str | None] = []
        append = refs.append
        others: dict[int, Rendered] = {}
        for i in range(batch.size):
            if i not in bad:
                if crm is not None and crm[i] is not None:
                    append(crm[i])
                    continue
                if cid is not None and cid[i] is not None:
                    append(str(cid[i]))
                    continue
                if any(values[i] is not None for values in columns):
                    append(_email_ref(i, sha, email, md5, self._hashes))
                    continue
            append(None)
            others[i] = self.builder.render(batch.row(i))
        return refs, others

    def _convert(
        self, batch: Batch, derive: bool
    ) -> tuple[list[Any], list[tuple[str, list[Any]]], list[tuple[Any, list[Any] | None]], set[int]]:
        """Each mapped column converted: the event ids, the identifiers (body key, values),
        the data fields (a constant's item, or its (name, type) and values), and the rows
        that failed. Without ``derive``, an email's derived values are its normalised form."""
        mapping = self.builder.mapping
        bad = set(batch.errors)
        columns = batch.columns
        n = batch.size

        def column(name: str) -> list[Any]:
            return columns.get(name) or [None] * n

        event_col = mapping.event_id_column
        events = self._event.column(column(event_col), True, bad) if event_col else [mapping.event_id] * n
        emails = {name: cached.column(column(name), False, bad) for name, cached in self._emails.items()}
        idents: list[tuple[str, list[Any]]] = []
        for step, cached in self._idents:
            if cached is None:
                normalised = emails[step.column]
                if step.required:
                    bad.update(i for i, email in enumerate(normalised) if email is None)
                values = [None if e is _FAIL else e for e in normalised]
                if derive:
                    convert = step.convert
                    values = [None if e is None else convert(e) for e in values]
            else:
                values = cached.column(column(step.column), step.required, bad)
            idents.append((step.body_key, values))
        fields: list[tuple[Any, list[Any] | None]] = []
        for field, converter in self._fields:
            if converter is None or isinstance(field, dict):
                fields.append((field, None))  # a constant: its rendered item
            else:
                fields.append((field, converter.column(column(field.column), field.required, bad)))
        return events, idents, fields, bad


def _email_ref(
    i: int,
    sha: list[Any] | None,
    email: list[Any] | None,
    md5: list[Any] | None,
    derive: dict[str, Callable[[str], str]],
) -> str:
    """customer_ref for a row whose ref comes from an email. Each column holds the
    normalised email where ``derive`` names the function (a hash) that gives its value."""
    body: dict[str, Any] = {}
    for key, values in (("customerEmailSha256", sha), ("customerEmail", email), ("customerEmailMd5", md5)):
        if values is not None and values[i] is not None:
            value = values[i]
            body[key] = derive[key](value) if key in derive else value
    return customer_ref(body)
