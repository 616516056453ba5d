"""The season simulation (``python app.py simulate``): a whole lending season driven through
the HTTP API and the reference device clients, ending with a portfolio report and the ledger
check. The project's showcase, and an end-to-end test of every part together.

Options: ``--villages``, ``--farmers`` (per village), ``--days``, ``--seed``, ``--start``
(the first business date), ``--out`` (also write the report to a file), ``--quiet`` (no
progress bar). The run is deterministic for a seed.
"""

from __future__ import annotations

import argparse
import logging
from datetime import date
from pathlib import Path

from simulation import report, world
from simulation.actors import SmsInbox
from simulation.season import Season
from simulation.tally import Options


def parse(argv: list[str]) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(prog="python app.py simulate",
                                     description="农贷季度模拟 Simulate a lending season.")
    parser.add_argument("--villages", type=int, default=3)
    parser.add_argument("--farmers", type=int, default=20, help="farmers per village")
    parser.add_argument("--days", type=int, default=240)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=Options.start,
                        help="first business date (YYYY-MM-DD)")
    parser.add_argument("--out", type=Path, default=None, help="write the report here too")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if min(args.villages, args.farmers, args.days) < 1:
        parser.error("--villages, --farmers and --days must be at least 1")
    return Options(villages=args.villages, farmers=args.farmers, days=args.days,
                   seed=args.seed, start=args.start, progress=not args.quiet), args.out


def simulate(options: Options, folder: Path | None = None) -> tuple[report.Report, Season]:
    """Build the county, run the season, build the report; stops the servers afterwards.
    The root logger is left as it was found (the simulated app configures its own)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    SmsInbox.clear()
    county = world.create(villages=options.villages, farmers=options.farmers,
                          seed=options.seed, start=options.start, folder=folder)
    season = None
    try:
        season = Season(county, options)
        tally = season.run()
        return report.build(season, tally), season
    finally:
        if season is not None:
            season.close()
        county.stop()
        root.handlers[:] = handlers
        root.setLevel(level)


def main(argv: list[str]) -> int:
    """``python app.py simulate [options]``: 0 when the ledger check passes."""
    options, out = parse(argv)
    result, _season = simulate(options)
    text = report.render(result)
    print(text)  # noqa: T201 - the simulation talks to a person
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    return 0 if result.ok else 1
