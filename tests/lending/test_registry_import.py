"""CSV import of registry extracts, and the ``extract:`` source that reads them."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.audit import AuditEvent
from core.db import utcnow
from core.people import idnumber
from core.people.services import id_number_hash
from lending.registries import service
from lending.registries.config import EXTRACT
from lending.registries.models import (
    ExtractCertificate,
    ExtractClaim,
    ExtractParcel,
    ExtractPledge,
    ExtractPolicy,
    RegistryImport,
)
from lending.registries.types import Pledge
from tests.lending.conftest import HOLDER, OTHER

LAND_HEADER = ("certificate_number,holder_id_hash,holder_name,parcel_code,area_mu,land_class,"
               "village_code,latitude,longitude,contract_start,contract_end,pledge_creditor,"
               "pledge_amount_yuan,pledge_start,pledge_end")
LAND_GOOD = [
    f"C-1,{HOLDER},张德福,P-1,3.25,paddy,330521101201,30.512345,120.123456,1998-01-01,"
    "2057-12-31,德清农商行,50000,2025-01-01,2027-12-31",
    f"C-1,{HOLDER},张德福,P-1,3.25,paddy,330521101201,30.512345,120.123456,1998-01-01,"
    "2057-12-31,湖州银行,20000.50,2020-01-01,2021-12-31",
    f"C-1,{HOLDER},张德福,P-2,12,dry,330521101201,30.5,120.1,1998-01-01,2026-12-31,,,,",
    f"C-2,{OTHER},刘春花,P-3,1.5,paddy,330521101202,30.6,120.2,1998-01-01,2057-12-31,,,,",
]
LAND_BAD = [  # lines 6.. of the file
    f"C-3,{HOLDER},张德福,P-4,3.255,paddy,330521101201,30.5,120.1,1998-01-01,2057-12-31,,,,",
    f"C-3,{HOLDER},张德福,P-5,3,paddy,3305211012,30.5,120.1,1998-01-01,2057-12-31,,,,",
    f"C-3,{HOLDER},张德福,P-6,3,paddy,330521101201,30.5,120.1,2057-12-31,1998-01-01,,,,",
    f"C-1,{OTHER},张德福,P-7,3,paddy,330521101201,30.5,120.1,1998-01-01,2057-12-31,,,,",
    f"C-3,{HOLDER},张德福,P-8,3,paddy,330521101201,30.5,120.1,1998-01-01,2057-12-31,X,1,,",
    "C-3,not-a-hash,张德福,P-9,3,paddy,330521101201,30.5,120.1,1998-01-01,2057-12-31,,,,",
    "C-3,too,few",
]
INSURANCE_HEADER = ("record_type,policy_number,holder_id_hash,crop,insured_area_mu,"
                    "sum_insured_yuan,policy_start,policy_end,policy_status,parcel_codes,"
                    "claim_event,claim_event_date,claim_loss_ratio,claim_status")
INSURANCE_LINES = [
    "claim,PICC-1,,,,,,,,,flood,2026-07-12,0.35,assessed",  # before its policy: fine
    f"policy,PICC-1,{HOLDER},rice,6.5,6500,2026-04-01,2026-11-30,active,P-1;P-2,,,,",
    f"policy,PICC-2,{HOLDER},wheat,2,1900.00,2025-10-01,2026-06-30,expired,,,,,",
    "claim,PICC-9,,,,,,,,,drought,2026-07-12,0.5,assessed",  # no such policy
    "claim,PICC-1,,,,,,,,,hail,2026-08-01,1.5,assessed",  # loss ratio above 1
    f"lease,PICC-3,{HOLDER},rice,1,1000,2026-04-01,2026-11-30,active,,,,,",
]


def write(tmp_path: Path, name: str, header: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def count(session: Any, model: type) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def import_land(runner: Any, path: Path, *args: str) -> Any:
    return runner.invoke(args=["registry", "import-land", str(path), *args])


# --- land ------------------------------------------------------------------------------------

def test_a_land_extract_is_imported(runner, session, tmp_path) -> None:
    result = import_land(runner, write(tmp_path, "land.csv", LAND_HEADER, LAND_GOOD))
    assert result.exit_code == 0, result.output
    assert "4 lines, 4 imported, 0 rejected" in result.stdout
    assert (count(session, ExtractCertificate), count(session, ExtractParcel),
            count(session, ExtractPledge)) == (2, 3, 2)
    parcel = session.scalars(sa.select(ExtractParcel).where(ExtractParcel.code == "P-1")).one()
    assert (parcel.area_cmu, parcel.latitude_e6, parcel.longitude_e6) == (
        325, 30_512_345, 120_123_456)
    run = session.scalars(sa.select(RegistryImport)).one()
    assert (run.registry_name, run.lines, run.accepted, run.rejected, run.inserted) == (
        "land", 4, 4, 0, 7)
    assert run.finished_at is not None
    assert session.scalar(sa.select(AuditEvent.summary).where(
        AuditEvent.action == "registry.import_land"))["inserted"] == 7


def test_rejected_lines_are_reported_with_their_numbers(runner, session, tmp_path) -> None:
    path = write(tmp_path, "land.csv", LAND_HEADER, LAND_GOOD + LAND_BAD)
    rejects = tmp_path / "rejects.csv"
    result = import_land(runner, path, "--rejects", str(rejects))
    assert result.exit_code == 1  # some lines rejected; the others are in
    expected = [
        ("6", "area_mu: at most 2 decimals"),
        ("7", "village_code: must be a 12-digit division code"),
        ("8", "contract_end: before contract_start"),
        ("9", "certificate differs from line 2"),
        ("10", "pledge_start: required when pledge_creditor is given"),
        ("11", "holder_id_hash: must be 64 hex characters"),
        ("12", "too few fields"),
    ]
    with rejects.open(encoding="utf-8") as written:
        assert list(csv.reader(written)) == [["line", "reason"], *map(list, expected)]
    for number, reason in expected:
        assert f"line {number}: {reason}" in result.stdout
    assert "11 lines, 4 imported, 7 rejected" in result.stdout
    assert count(session, ExtractParcel) == 3


def test_importing_the_same_file_again_changes_nothing(runner, session, tmp_path) -> None:
    path = write(tmp_path, "land.csv", LAND_HEADER, LAND_GOOD)
    assert import_land(runner, path, "--chunk-size", "2").exit_code == 0
    before = session.execute(sa.select(ExtractParcel.code, ExtractParcel.updated_at)
                             .order_by(ExtractParcel.code)).all()
    session.commit()
    again = import_land(runner, path)
    assert again.exit_code == 0
    assert "rows inserted 0, updated 0" in again.stdout
    assert session.execute(sa.select(ExtractParcel.code, ExtractParcel.updated_at)
                           .order_by(ExtractParcel.code)).all() == before
    assert (count(session, ExtractCertificate), count(session, ExtractPledge)) == (2, 2)
    session.commit()
    changed = [LAND_GOOD[0], LAND_GOOD[1], LAND_GOOD[2].replace(",12,dry,", ",11.5,dry,"),
               LAND_GOOD[3]]
    result = import_land(runner, write(tmp_path, "land2.csv", LAND_HEADER, changed))
    assert "rows inserted 0, updated 1" in result.stdout
    assert session.scalar(sa.select(ExtractParcel.area_cmu).where(
        ExtractParcel.code == "P-2")) == 1150


def test_progress_goes_to_stderr_and_can_be_silenced(runner, tmp_path) -> None:
    path = write(tmp_path, "land.csv", LAND_HEADER, LAND_GOOD)
    result = import_land(runner, path)
    assert "land: 100%" in result.stderr
    assert "4/4" in result.stderr
    assert "100%" not in result.stdout
    assert "100%" not in import_land(runner, path, "--no-progress").stderr


def test_an_unreadable_file_imports_nothing(runner, session, tmp_path) -> None:
    wrong = write(tmp_path, "wrong.csv", LAND_HEADER.replace("area_mu", "area"), LAND_GOOD)
    result = import_land(runner, wrong)
    assert result.exit_code == 2
    assert "missing columns: area_mu" in result.stderr
    latin = tmp_path / "latin.csv"
    latin.write_bytes((LAND_HEADER + "\n").encode() + "C-1,é\n".encode("latin-1"))
    result = import_land(runner, latin)
    assert result.exit_code == 2
    assert "line 2 is not utf-8-sig text" in result.stderr
    assert count(session, RegistryImport) == 0
    assert count(session, ExtractCertificate) == 0


def test_id_numbers_are_hashed_on_import_and_never_stored(runner, session, tmp_path) -> None:
    number = idnumber.make("330521", date(1972, 3, 14), 7)
    header = LAND_HEADER.replace("holder_id_hash", "holder_id_number")
    lines = [LAND_GOOD[2].replace(HOLDER, number), LAND_GOOD[3].replace(OTHER, "33052119720314")]
    result = import_land(runner, write(tmp_path, "land.csv", header, lines))
    assert result.exit_code == 1
    assert "line 3: holder_id_number: not a valid resident ID number" in result.stdout
    assert number not in result.output
    assert "33052119720314" not in result.output
    stored = session.scalars(sa.select(ExtractCertificate.holder_hash)).all()
    assert stored == [id_number_hash(number)]


# --- insurance -------------------------------------------------------------------------------

def test_an_insurance_extract_is_imported_policies_first(runner, session, tmp_path) -> None:
    path = write(tmp_path, "insurance.csv", INSURANCE_HEADER, INSURANCE_LINES)
    result = runner.invoke(args=["registry", "import-insurance", str(path)])
    assert result.exit_code == 1
    assert "6 lines, 3 imported, 3 rejected" in result.stdout
    assert "line 5: policy_number: no such policy in this file or an earlier one" in (
        result.stdout)
    assert "line 6: claim_loss_ratio: must be between 0 and 1" in result.stdout
    assert "line 7: record_type: must be one of policy, claim" in result.stdout
    assert "policies: 100%" in result.stderr
    assert "claims: 100%" in result.stderr
    policy = session.scalars(sa.select(ExtractPolicy).where(ExtractPolicy.number == "PICC-1")
                             ).one()
    assert (policy.insured_area_cmu, policy.sum_insured_fen, policy.parcel_codes) == (
        650, 650_000, ["P-1", "P-2"])
    assert session.scalars(sa.select(ExtractClaim.loss_ratio_bp)).all() == [3500]
    session.commit()
    again = runner.invoke(args=["registry", "import-insurance", str(path)])
    assert "rows inserted 0, updated 0" in again.stdout


# --- the extract: source ---------------------------------------------------------------------

def test_the_extract_source_answers_from_the_imported_tables(runner, app, session,
                                                            tmp_path, registry) -> None:
    app.config["NONGDAI_LAND_REGISTRY_URL"] = EXTRACT
    app.config["NONGDAI_INSURANCE_REGISTRY_URL"] = EXTRACT
    import_land(runner, write(tmp_path, "land.csv", LAND_HEADER, LAND_GOOD))
    runner.invoke(args=["registry", "import-insurance", str(
        write(tmp_path, "insurance.csv", INSURANCE_HEADER, INSURANCE_LINES[:3]))])
    result = service.lookup(session, HOLDER, ["C-1", "C-2", "C-404"])
    assert result.failures == {}
    assert result.sources == {"land": "extract", "insurance": "extract"}
    assert registry.count() == 0  # no HTTP at all
    assert [c.number for c in result.land.certificates] == ["C-1"]
    assert [(c.number, c.holder_hash) for c in result.land.foreign] == [("C-2", OTHER)]
    first = result.land.certificates[0].parcels[0]
    assert (first.code, first.area_mu, first.latitude) == ("P-1", Decimal("3.25"),
                                                           Decimal("30.512345"))
    assert first.pledges == (
        Pledge(creditor="湖州银行", amount_fen=2_000_050, start=date(2020, 1, 1),
               end=date(2021, 12, 31), active=False),
        Pledge(creditor="德清农商行", amount_fen=5_000_000, start=date(2025, 1, 1),
               end=date(2027, 12, 31), active=True))
    assert [p.number for p in result.insurance.policies] == ["PICC-2", "PICC-1"]
    assert [(c.policy_number, c.loss_ratio) for c in result.insurance.claims] == [
        ("PICC-1", Decimal("0.35"))]
    assert session.scalar(sa.select(sa.func.count()).select_from(
        sa.table("registry_cache"))) == 0  # local data is not cached again


def test_an_extract_never_imported_or_too_old_is_unavailable(app, session, registry) -> None:
    app.config["NONGDAI_LAND_REGISTRY_URL"] = EXTRACT
    result = service.lookup(session, HOLDER, [])
    assert (result.failures["land"].registry, result.failures["land"].reason) == ("land",
                                                                                 "error")
    assert result.sources == {"insurance": "http"}  # the other registry is still asked
    session.add(RegistryImport(registry_name="land", file_name="old.csv", file_sha256="0" * 64,
                               started_at=utcnow() - timedelta(days=40),
                               finished_at=utcnow() - timedelta(days=40)))
    session.commit()
    assert service.lookup(session, HOLDER, []).failures == {}
    app.config["NONGDAI_REGISTRY_EXTRACT_MAX_AGE_DAYS"] = 30
    assert set(service.lookup(session, HOLDER, []).failures) == {"land"}
