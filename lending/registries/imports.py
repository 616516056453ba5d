"""Importing registry extracts (CSV batch files) into the extract tables.

For banks that receive files instead of an API. A file is read twice: once to check that it
is readable (encoding, header) and to count its lines for the progress bar, then line by
line in chunks; each chunk is validated, upserted by the registry's natural keys and
**committed on its own** (a CLI command is its own transaction story, as a job is): a crash
keeps the chunks before it, and running the import again finishes the work, since an
unchanged line changes nothing. A rejected line (with its line number and reason) never stops
the others. The run is recorded in ``registry_imports``; only a finished run makes the
extract count as imported (see ``extracts.check_fresh``). A finished land import also
refreshes the bank's copy of its farmers' parcels (``parcels.from_extracts``: one statement).

The columns are in :data:`LAND_COLUMNS` and :data:`INSURANCE_COLUMNS` (docs/registries.md).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from core import audit
from core.db import DbSession, utcnow
from lending.registries import csvfields as f
from lending.registries import parcels
from lending.registries.config import LAND
from lending.registries.models import RegistryImport

T = TypeVar("T")
CHUNK = 500
HOLDER_COLUMNS = ("holder_id_hash", "holder_id_number")  # exactly one of them
LAND_COLUMNS = ("certificate_number", "holder_name", "parcel_code", "area_mu",
                "land_class", "village_code", "latitude", "longitude", "contract_start",
                "contract_end", "pledge_creditor", "pledge_amount_yuan", "pledge_start",
                "pledge_end")
INSURANCE_COLUMNS = ("record_type", "policy_number", "crop", "insured_area_mu",
                     "sum_insured_yuan", "policy_start", "policy_end", "policy_status",
                     "parcel_codes", "claim_event", "claim_event_date", "claim_loss_ratio",
                     "claim_status")


class BadFile(ValueError):
    """The file cannot be imported at all (unreadable, wrong encoding, wrong header)."""


@dataclass(frozen=True)
class Line:
    number: int  # physical line number in the file (the header is line 1)
    row: dict[str, str]


@dataclass
class Report:
    """What an import did: counted in lines, and in extract rows written."""

    registry: str
    file_name: str
    lines: int = 0
    accepted: int = 0
    inserted: int = 0
    updated: int = 0
    rejects: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    def reject(self, line: Line, reason: str) -> None:
        self.rejects.append((line.number, reason))


class Consistency:
    """Within one file, a natural key must always come with the same values."""

    def __init__(self) -> None:
        self._seen: dict[Any, tuple[int, Any]] = {}

    def check(self, what: str, key: Any, values: Any, line: Line) -> None:
        first = self._seen.setdefault(key, (line.number, values))
        if first[1] != values:
            raise f.Rejected(f"{what} differs from line {first[0]}")


# --- reading the file ------------------------------------------------------------------------

@dataclass(frozen=True)
class Scanned:
    sha256: str
    lines: int  # data lines (physical lines after the header; a quoted newline counts twice)
    header: tuple[str, ...]


def scan(path: Path, encoding: str, columns: tuple[str, ...]) -> Scanned:
    """Check the file before importing anything: it decodes, and its header is the format's."""
    digest, count, header = hashlib.sha256(), 0, None
    with path.open("rb") as raw:
        for number, data in enumerate(raw, start=1):
            digest.update(data)
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                raise BadFile(f"line {number} is not {encoding} text") from None
            if header is None:
                header = tuple(c.strip() for c in next(csv.reader([text])))
            elif text.strip():
                count += 1
    if header is None:
        raise BadFile("the file is empty")
    _check_header(header, columns)
    return Scanned(sha256=digest.hexdigest(), lines=count, header=header)


def _check_header(header: tuple[str, ...], columns: tuple[str, ...]) -> None:
    holders = [c for c in HOLDER_COLUMNS if c in header]
    if len(holders) != 1:
        raise BadFile("the header needs exactly one of holder_id_hash, holder_id_number")
    missing = [c for c in columns if c not in header]
    unknown = [c for c in header if c not in (*columns, *HOLDER_COLUMNS)]
    if missing:
        raise BadFile(f"missing columns: {', '.join(missing)}")
    if unknown:
        raise BadFile(f"unknown columns: {', '.join(unknown)}")
    if len(set(header)) != len(header):
        raise BadFile("a column appears twice")


def lines(path: Path, encoding: str) -> Iterator[Line | tuple[int, str]]:
    """Each data line as a :class:`Line`, or ``(number, reason)`` when it has too many or too
    few fields."""
    with path.open(encoding=encoding, newline="") as text:
        reader = csv.DictReader(text, skipinitialspace=False)
        reader.fieldnames = [c.strip() for c in reader.fieldnames or ()]
        for row in reader:
            if None in row:
                yield reader.line_num, "too many fields"
            elif any(value is None for value in row.values()):
                yield reader.line_num, "too few fields"
            else:
                yield Line(reader.line_num, {k: v or "" for k, v in row.items()})


def chunked(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


# --- running an import -----------------------------------------------------------------------

Parse = Callable[[Line], Any]  # a line to its values, or raise f.Rejected
Apply = Callable[[DbSession, list[tuple[Line, Any]], Report], None]


@dataclass(frozen=True)
class Pass:
    """One reading of the file: which lines it takes, how it reads and writes them."""

    name: str
    takes: Callable[[Line], bool]
    parse: Parse
    apply: Apply
    first: bool = True  # the first pass also reports lines with a wrong number of fields


def run(session: DbSession, registry: str, path: Path, passes: list[Pass], *,
        encoding: str = "utf-8-sig", chunk_size: int = CHUNK,
        progress: Callable[[str, int], Any] | None = None,
        columns: tuple[str, ...] = ()) -> Report:
    """Import ``path``: each pass over the file, chunk by chunk, one commit per chunk."""
    scanned = scan(path, encoding, columns)
    report = Report(registry=registry, file_name=path.name, lines=scanned.lines)
    record = RegistryImport(registry_name=registry, file_name=path.name[:200],
                            file_sha256=scanned.sha256, started_at=utcnow())
    session.add(record)
    session.flush()
    for one in passes:
        bar = progress(one.name, scanned.lines) if progress else None
        for chunk in chunked(lines(path, encoding), chunk_size):
            _chunk(session, one, chunk, report)
            session.commit()
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
    if registry == LAND:
        parcels.from_extracts(session)
    _finish(session, record, report)
    session.commit()
    return report


def _chunk(session: DbSession, one: Pass, chunk: list[Line | tuple[int, str]],
           report: Report) -> None:
    parsed: list[tuple[Line, Any]] = []
    for item in chunk:
        if not isinstance(item, Line):
            if one.first:
                report.rejects.append(item)
            continue
        if not one.takes(item):
            continue
        try:
            parsed.append((item, one.parse(item)))
        except f.Rejected as exc:
            report.reject(item, str(exc))
    if parsed:
        one.apply(session, parsed, report)


def _finish(session: DbSession, record: RegistryImport, report: Report) -> None:
    report.rejects.sort()
    record.finished_at = utcnow()
    record.lines, record.rejected = report.lines, report.rejected
    record.accepted = report.accepted
    record.inserted, record.updated = report.inserted, report.updated
    session.flush()
    audit.record(session, f"registry.import_{report.registry}", record, summary={
        "file_sha256": record.file_sha256, "lines": report.lines,
        "accepted": report.accepted, "rejected": report.rejected,
        "inserted": report.inserted, "updated": report.updated}, actor=audit.SYSTEM)


# --- writing rows ----------------------------------------------------------------------------

def upsert(session: DbSession, model: type[T], existing: dict[Any, T],
           wanted: dict[Any, dict[str, Any]], report: Report) -> dict[Any, T]:
    """Insert the rows of ``wanted`` (key -> column values) that ``existing`` lacks, update
    those whose values changed, leave the rest alone; returns every row by key, flushed."""
    for key, values in wanted.items():
        row = existing.get(key)
        if row is None:
            row = model(**values)
            session.add(row)
            existing[key] = row
            report.inserted += 1
        elif any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = utcnow()  # type: ignore[attr-defined]
            report.updated += 1
    session.flush()
    return existing

