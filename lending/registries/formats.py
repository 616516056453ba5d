"""The two extract formats: one CSV line per parcel (land) or per policy or claim (insurance).

Land: ``certificate_number, holder_id_hash | holder_id_number, holder_name, parcel_code,
area_mu, land_class, village_code, latitude, longitude, contract_start, contract_end,
pledge_creditor, pledge_amount_yuan, pledge_start, pledge_end``. A certificate with several
parcels has several lines (the same holder on each); a parcel with several pledges too; the
pledge columns are empty when the parcel has none.

Insurance: ``record_type`` (``policy`` or ``claim``), ``policy_number``, ``holder_id_hash |
holder_id_number``, ``crop, insured_area_mu, sum_insured_yuan, policy_start, policy_end,
policy_status, parcel_codes`` (``;``-separated) on policy lines; ``claim_event,
claim_event_date, claim_loss_ratio, claim_status`` on claim lines. Policies are read in a
first pass and claims in a second, so a claim may come before its policy in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.db import DbSession
from lending.registries import csvfields as f
from lending.registries.config import INSURANCE, LAND
from lending.registries.imports import (
    INSURANCE_COLUMNS,
    LAND_COLUMNS,
    Consistency,
    Line,
    Pass,
    Report,
    run,
    upsert,
)
from lending.registries.models import (
    ExtractCertificate,
    ExtractClaim,
    ExtractParcel,
    ExtractPledge,
    ExtractPolicy,
)
from lending.registries.wire import CLAIM_STATUSES, POLICY_STATUSES

PLEDGE_COLUMNS = ("pledge_creditor", "pledge_amount_yuan", "pledge_start", "pledge_end")
CLAIM_COLUMNS = ("claim_event", "claim_event_date", "claim_loss_ratio", "claim_status")
RECORD_TYPES = ("policy", "claim")
MAX_MU, MAX_YUAN = "100000", "1000000000"


# --- land ------------------------------------------------------------------------------------

def import_land(session: DbSession, path: Path, **options: Any) -> Report:
    seen = Consistency()
    return run(session, LAND, path, [Pass("land", lambda _: True,
                                          lambda line: _land_line(line, seen), _apply_land)],
               columns=LAND_COLUMNS, **options)


def _land_line(line: Line, seen: Consistency) -> dict[str, Any]:
    row = line.row
    number = f.text(row, "certificate_number", 40)
    certificate = {"number": number, "holder_hash": f.holder(row),
                   "holder_name": f.text(row, "holder_name", 100)}
    start, end = f.period(row, "contract_start", "contract_end")
    parcel = {"code": f.text(row, "parcel_code", 40),
              "area_cmu": f.scaled(row, "area_mu", 2, "0.01", MAX_MU),
              "land_class": f.text(row, "land_class", 30).lower(),
              "village_code": f.village(row, "village_code"),
              "latitude_e6": f.scaled(row, "latitude", 6, "-90", "90"),
              "longitude_e6": f.scaled(row, "longitude", 6, "-180", "180"),
              "contract_start": start, "contract_end": end}
    pledge = None if f.blank(row, PLEDGE_COLUMNS) else _pledge(row)
    seen.check("certificate", ("certificate", number), certificate, line)
    seen.check("parcel", ("parcel", parcel["code"]), (number, parcel), line)
    if pledge:
        seen.check("pledge", ("pledge", parcel["code"], pledge["creditor"], pledge["start"]),
                   pledge, line)
    return {"certificate": certificate, "parcel": parcel, "pledge": pledge}


def _pledge(row: dict[str, str]) -> dict[str, Any]:
    start, end = f.period(row, "pledge_start", "pledge_end")
    return {"creditor": f.text(row, "pledge_creditor", 200),
            "amount_fen": f.scaled(row, "pledge_amount_yuan", 2, "0", MAX_YUAN),
            "start": start, "end": end}


def _apply_land(session: DbSession, parsed: list[tuple[Line, Any]], report: Report) -> None:
    values = [v for _, v in parsed]
    wanted = {v["certificate"]["number"]: v["certificate"] for v in values}
    certificates = upsert(session, ExtractCertificate, _by(
        session, ExtractCertificate, ExtractCertificate.number, wanted), wanted, report)
    parcels_wanted = {v["parcel"]["code"]: {
        **v["parcel"], "certificate_id": certificates[v["certificate"]["number"]].id}
        for v in values}
    parcels = upsert(session, ExtractParcel, _by(
        session, ExtractParcel, ExtractParcel.code, parcels_wanted), parcels_wanted, report)
    pledges_wanted = {
        (parcels[v["parcel"]["code"]].id, v["pledge"]["creditor"], v["pledge"]["start"]):
            {**v["pledge"], "parcel_id": parcels[v["parcel"]["code"]].id}
        for v in values if v["pledge"]}
    existing = session.scalars(sa.select(ExtractPledge).where(
        ExtractPledge.parcel_id.in_({key[0] for key in pledges_wanted}))).all()
    upsert(session, ExtractPledge, {(p.parcel_id, p.creditor, p.start): p for p in existing},
           pledges_wanted, report)
    report.accepted += len(parsed)


def _by(session: DbSession, model: type[Any], column: Any, keys: dict[str, Any]) -> dict[str, Any]:
    rows = session.scalars(sa.select(model).where(column.in_(list(keys)))).all()
    return {getattr(row, column.key): row for row in rows}


# --- insurance -------------------------------------------------------------------------------

def import_insurance(session: DbSession, path: Path, **options: Any) -> Report:
    seen = Consistency()
    passes = [
        Pass("policies", lambda line: _record_type(line) != "claim",
             lambda line: _policy_line(line, seen), _apply_policies),
        Pass("claims", lambda line: _record_type(line) == "claim",
             lambda line: _claim_line(line, seen), _apply_claims, first=False),
    ]
    return run(session, INSURANCE, path, passes, columns=INSURANCE_COLUMNS, **options)


def _record_type(line: Line) -> str:
    return line.row.get("record_type", "").strip().lower()


def _policy_line(line: Line, seen: Consistency) -> dict[str, Any]:
    row = line.row
    f.choice(row, "record_type", RECORD_TYPES)
    start, end = f.period(row, "policy_start", "policy_end")
    codes = [c.strip() for c in row.get("parcel_codes", "").split(";") if c.strip()]
    if any(len(c) > 40 for c in codes):
        raise f.Rejected("parcel_codes: a code is longer than 40 characters")
    policy = {"number": f.text(row, "policy_number", 40), "holder_hash": f.holder(row),
              "crop": f.text(row, "crop", 30).lower(),
              "insured_area_cmu": f.scaled(row, "insured_area_mu", 2, "0", MAX_MU),
              "sum_insured_fen": f.scaled(row, "sum_insured_yuan", 2, "0", MAX_YUAN),
              "start": start, "end": end,
              "status": f.choice(row, "policy_status", POLICY_STATUSES),
              "parcel_codes": sorted(set(codes))}
    seen.check("policy", ("policy", policy["number"]), policy, line)
    return policy


def _apply_policies(session: DbSession, parsed: list[tuple[Line, Any]],
                    report: Report) -> None:
    wanted = {v["number"]: v for _, v in parsed}
    upsert(session, ExtractPolicy, _by(session, ExtractPolicy, ExtractPolicy.number, wanted),
           wanted, report)
    report.accepted += len(parsed)


def _claim_line(line: Line, seen: Consistency) -> dict[str, Any]:
    row = line.row
    if f.blank(row, CLAIM_COLUMNS):
        raise f.Rejected("claim_event: required on a claim line")
    claim = {"policy_number": f.text(row, "policy_number", 40),
             "event": f.text(row, "claim_event", 30).lower(),
             "event_date": f.day(row, "claim_event_date"),
             "loss_ratio_bp": f.scaled(row, "claim_loss_ratio", 4, "0", "1"),
             "status": f.choice(row, "claim_status", CLAIM_STATUSES)}
    seen.check("claim", ("claim", claim["policy_number"], claim["event"], claim["event_date"]),
               claim, line)
    return claim


def _apply_claims(session: DbSession, parsed: list[tuple[Line, Any]], report: Report) -> None:
    numbers = {v["policy_number"] for _, v in parsed}
    policies = _by(session, ExtractPolicy, ExtractPolicy.number, dict.fromkeys(numbers))
    wanted: dict[Any, dict[str, Any]] = {}
    for line, claim in parsed:
        policy = policies.get(claim["policy_number"])
        if policy is None:
            report.reject(line, "policy_number: no such policy in this file or an earlier one")
            continue
        values = {k: v for k, v in claim.items() if k != "policy_number"}
        wanted[(policy.id, claim["event"], claim["event_date"])] = {
            **values, "policy_id": policy.id}
        report.accepted += 1
    existing = session.scalars(sa.select(ExtractClaim).where(
        ExtractClaim.policy_id.in_({key[0] for key in wanted}))).all()
    upsert(session, ExtractClaim, {(c.policy_id, c.event, c.event_date): c for c in existing},
           wanted, report)
