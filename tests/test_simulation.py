"""The season simulation, small and quick: 2 villages x 5 farmers x 60 days, over real HTTP on
loopback. The report's totals must be what the database holds, every servicing route the
season needs must be served, and the ledger check must pass.

The simulation builds its own SQLite instance (a temporary folder), so this test runs the same
whichever database the rest of the suite uses.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import simulation
from lending.applications.models import Application
from lending.servicing.models import Disbursement, Loan, Repayment
from simulation import report
from simulation.tally import Options

SMALL = Options(villages=2, farmers=5, days=60, seed=3, start=date(2027, 3, 8), progress=False)


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> tuple[report.Report, Path]:
    folder = tmp_path_factory.mktemp("season")
    result, _season = simulation.simulate(SMALL, folder=folder)
    return result, folder / "nongdai.sqlite3"


def _scalar(path: Path, stmt: Any) -> Any:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return conn.execute(stmt).scalar_one()
    finally:
        engine.dispose()


def test_every_farmer_applied_and_the_cases_were_decided(season):
    result, path = season
    applied = _scalar(path, sa.select(sa.func.count()).select_from(Application))
    assert applied == SMALL.villages * SMALL.farmers
    assert sum(n for step, n in result.tally.paths.items() if step.startswith("submitted")) \
        == applied
    undecided = _scalar(path, sa.select(sa.func.count()).select_from(Application).where(
        Application.state.in_(("submitted", "awaiting_field_check", "under_review"))))
    assert undecided == 0, result.tally.paths
    assert result.network["field visits recorded"] > 0
    assert result.network["ops still on phones"] == 0


def test_the_report_totals_are_the_databases(season):
    result, path = season
    assert result.tally.missing == []
    disbursed = _scalar(path, sa.select(sa.func.coalesce(sa.func.sum(
        Disbursement.amount_fen), 0)).where(Disbursement.status == "authorised"))
    repaid = _scalar(path, sa.select(sa.func.coalesce(sa.func.sum(Repayment.amount_fen), 0)))
    loans = _scalar(path, sa.select(sa.func.count()).select_from(Loan))
    assert disbursed > 0
    assert result.tally.disbursed_fen == disbursed
    assert result.tally.repaid_fen == repaid
    assert result.tally.repayments == _scalar(
        path, sa.select(sa.func.count()).select_from(Repayment))
    assert sum(n for kind, n in result.tally.loans.items() if kind.startswith("accepted")) \
        == loans
    assert result.tally.four_eyes_refused == 1
    assert result.tally.errors == []


def test_par_is_reported_by_village_and_adds_up(season):
    result, _path = season
    *villages, total = result.par_by_village
    assert len(villages) == SMALL.villages
    assert sum(row["outstanding_fen"] for row in villages) == total["outstanding_fen"]
    assert sum(row["par30_fen"] for row in villages) == total["par30_fen"]


def test_the_ledger_check_passes(season):
    result, _path = season
    assert result.ledger.ok, result.ledger.text
    assert "通过 PASSED" in report.render(result)


def test_the_options_are_checked():
    with pytest.raises(SystemExit):
        simulation.parse(["--days", "0"])
    options, out = simulation.parse(["--villages", "1", "--farmers", "2", "--days", "3",
                                     "--seed", "9", "--out", "r.txt", "--quiet"])
    assert (options.villages, options.farmers, options.days, options.seed) == (1, 2, 3, 9)
    assert out == Path("r.txt")
    assert options.progress is False
