"""``flask --app app registry import-land|import-insurance FILE``: load registry extracts.

Exit status: 0 when every line was imported; 1 when some lines were rejected (the others are
imported and committed: fix the rejected lines and import the file again, which changes
nothing for the lines already in); 2 when the file cannot be read at all (encoding, header),
in which case nothing is imported.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup
from tqdm import tqdm

from core.db import db
from lending.registries import formats
from lending.registries.imports import CHUNK, INSURANCE_COLUMNS, LAND_COLUMNS, BadFile, Report

SHOWN_REJECTS = 20  # rejected lines printed; all of them go to --rejects

registry_cli = AppGroup("registry", help="Registry extracts (batch files instead of an API).")

_FILE = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_REJECTS = click.option("--rejects", type=click.Path(dir_okay=False, writable=True,
                                                     path_type=Path),
                        help="Write every rejected line (line,reason) to this CSV file.")
_ENCODING = click.option("--encoding", default="utf-8-sig", show_default=True,
                         help="Text encoding of the file (e.g. gb18030).")
_CHUNK = click.option("--chunk-size", type=click.IntRange(1, 10_000), default=CHUNK,
                      show_default=True, help="Lines per committed chunk.")
_QUIET = click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")


def _columns(columns: tuple[str, ...], holder_at: int) -> str:
    """The header, in the documented order, with the holder column where it goes."""
    shown = list(columns)
    shown.insert(holder_at, "holder_id_hash (or holder_id_number)")
    return ", ".join(shown)


@registry_cli.command("import-land", help=(
    "Import a land-registry extract (CSV with a header line, one line per parcel and pledge)."
    f"\n\nColumns: {_columns(LAND_COLUMNS, 1)}.\n\n"
    "Areas in mu (at most 2 decimals), latitude/longitude in degrees (at most 6 decimals), "
    "dates YYYY-MM-DD, pledge amounts in yuan; pledge columns empty when there is none. "
    "Exit 0: all imported; 1: some lines rejected (the rest imported); 2: unreadable file."))
@_FILE
@_REJECTS
@_ENCODING
@_CHUNK
@_QUIET
def import_land(file: Path, rejects: Path | None, encoding: str, chunk_size: int,
                no_progress: bool) -> None:
    _import(formats.import_land, file, rejects=rejects, encoding=encoding,
            chunk_size=chunk_size, no_progress=no_progress)


@registry_cli.command("import-insurance", help=(
    "Import an insurance-registry extract (CSV with a header line; record_type policy or "
    f"claim on each line).\n\nColumns: {_columns(INSURANCE_COLUMNS, 2)}.\n\n"
    "Policy lines fill the policy columns (parcel_codes separated by ';'), claim lines "
    "policy_number and the claim columns; loss ratio 0..1 (at most 4 decimals), sums in "
    "yuan, dates YYYY-MM-DD. Exit 0: all imported; 1: some lines rejected (the rest "
    "imported); 2: unreadable file."))
@_FILE
@_REJECTS
@_ENCODING
@_CHUNK
@_QUIET
def import_insurance(file: Path, rejects: Path | None, encoding: str, chunk_size: int,
                     no_progress: bool) -> None:
    _import(formats.import_insurance, file, rejects=rejects, encoding=encoding,
            chunk_size=chunk_size, no_progress=no_progress)


def _import(importer: Callable[..., Report], file: Path, *, rejects: Path | None,
            encoding: str, chunk_size: int, no_progress: bool) -> None:
    progress = None if no_progress else _progress_bar
    try:
        report = importer(db.session, file, encoding=encoding, chunk_size=chunk_size,
                          progress=progress)
    except (BadFile, LookupError) as exc:  # LookupError: an unknown --encoding
        db.session.rollback()
        click.echo(f"Error: {file.name}: {exc}; nothing imported.", err=True)
        sys.exit(2)
    except BaseException:
        db.session.rollback()
        raise
    click.echo(_summary(report))
    if rejects is not None:
        _write_rejects(rejects, report)
    if report.rejected:
        sys.exit(1)


def _progress_bar(name: str, total: int) -> Any:
    return tqdm(total=total, desc=name, unit="line", file=sys.stderr, mininterval=0.5,
                dynamic_ncols=True)


def _summary(report: Report) -> str:
    lines = [f"{report.registry} extract {report.file_name}: {report.lines} lines, "
             f"{report.accepted} imported, {report.rejected} rejected; "
             f"rows inserted {report.inserted}, updated {report.updated}."]
    if report.rejects:
        lines.append("Rejected lines:")
        lines += [f"  line {number}: {reason}"
                  for number, reason in report.rejects[:SHOWN_REJECTS]]
        if report.rejected > SHOWN_REJECTS:
            lines.append(f"  ... and {report.rejected - SHOWN_REJECTS} more (see --rejects)")
    return "\n".join(lines)


def _write_rejects(path: Path, report: Report) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("line", "reason"))
        writer.writerows(report.rejects)
