"""Deterministic synthetic registry records: the same holder hash and seed give the same records.

Every holder gets 1-2 land certificates in the Deqing demo county (~30.5N 120.0E) with 1-4
parcels of 1.5-12 mu; contracts run 1998-01-01..2057-12-31, except for ~10% of holders whose
contracts end 2026-12-31; ~10% have an active pledge on one parcel; ~70% an active policy
(rice or wheat, whichever seasons cover ``as_of``) on part of their parcels, at 1,000 yuan/mu
for rice and 950 for wheat; ~10% an assessed drought or flood claim (loss ratio 0.2-0.8).

The random stream is seeded with SHA-256 of the seed and the holder hash, and drawn in a fixed
order; dates follow ``as_of`` only where "current" matters (the policy season, the pledge).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗"
GIVEN_NAMES = ("建国", "秀英", "德福", "春花", "大海", "桂兰", "永刚", "志强", "玉兰", "国华",
               "金凤", "海涛", "美华", "长生", "丽娟", "水根")
VILLAGES = ("330521101201", "330521101202", "330521101203", "330521102201", "330521102202")
LAND_CLASSES = ("paddy", "paddy", "irrigated", "dry")
CREDITORS = ("德清农村商业银行", "湖州银行德清支行", "邮储银行德清县支行")
EVENTS = ("drought", "flood")
CONTRACT_START = date(1998, 1, 1)
CONTRACT_END = date(2057, 12, 31)
SHORT_CONTRACT_END = date(2026, 12, 31)
LATITUDE, LONGITUDE = (Decimal("30.45"), Decimal("0.20")), (Decimal("119.95"), Decimal("0.30"))


@dataclass(frozen=True)
class Crop:
    name: str
    yuan_per_mu: int
    start: tuple[int, int]  # month, day
    end: tuple[int, int]
    spans_new_year: bool  # winter wheat: sown in October, harvested in June

    def season(self, as_of: date) -> tuple[date, date] | None:
        """The season of this crop that covers ``as_of``, if any."""
        for year in (as_of.year - 1, as_of.year):
            start = date(year, *self.start)
            end = date(year + 1 if self.spans_new_year else year, *self.end)
            if start <= as_of <= end:
                return start, end
        return None


CROPS = (Crop("rice", 1000, (4, 1), (11, 30), spans_new_year=False),
         Crop("wheat", 950, (10, 1), (6, 30), spans_new_year=True))


def rng_for(seed: str, holder_hash: str, stream: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{stream}\x00{holder_hash}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - synthetic data


def _share(r: random.Random) -> float:
    return r.random()


def _degrees(r: random.Random, base: tuple[Decimal, Decimal]) -> str:
    value = base[0] + base[1] * Decimal(r.randrange(1_000_000)) / Decimal(1_000_000)
    return str(value.quantize(Decimal("0.000001")))


def land(seed: str, holder_hash: str, as_of: date) -> dict[str, Any]:
    """The holder's certificates, in the land registry's JSON."""
    r = rng_for(seed, holder_hash, "land")
    name = r.choice(SURNAMES) + r.choice(GIVEN_NAMES)
    short_contract = _share(r) < 0.10
    pledged = _share(r) < 0.10
    certificates: list[dict[str, Any]] = []
    for _ in range(1 if _share(r) < 0.7 else 2):
        village = r.choice(VILLAGES)
        number = f"{village}J{r.randrange(10**10):010d}"
        parcels = [_parcel(r, village, short_contract) for _ in range(r.randint(1, 4))]
        certificates.append({"number": number, "holder_hash": holder_hash, "holder_name": name,
                             "parcels": parcels})
    if pledged:
        certificates[0]["parcels"][0]["pledges"].append(_pledge(r, as_of))
    return {"holder_hash": holder_hash, "certificates": certificates}


def _parcel(r: random.Random, village: str, short_contract: bool) -> dict[str, Any]:
    return {
        "code": f"{village}{r.randrange(10**7):07d}",
        "area_mu": str(Decimal(r.randint(150, 1200)).scaleb(-2)),
        "land_class": r.choice(LAND_CLASSES),
        "village_code": village,
        "latitude": _degrees(r, LATITUDE),
        "longitude": _degrees(r, LONGITUDE),
        "contract_start": CONTRACT_START.isoformat(),
        "contract_end": (SHORT_CONTRACT_END if short_contract else CONTRACT_END).isoformat(),
        "pledges": [],
    }


def _pledge(r: random.Random, as_of: date) -> dict[str, Any]:
    """Registered during last year for 2-3 years: active on ``as_of``."""
    start = date(as_of.year - 1, 1, 1) + timedelta(days=r.randrange(365))
    return {"creditor": r.choice(CREDITORS), "amount_yuan": f"{r.randint(2, 10) * 10000}.00",
            "start": start.isoformat(),
            "end": (start + timedelta(days=365 * r.randint(2, 3))).isoformat(),
            "active": True}


def insurance(seed: str, holder_hash: str, as_of: date,
              land_record: dict[str, Any]) -> dict[str, Any]:
    """The holder's policies and claims, in the insurance registry's JSON."""
    r = rng_for(seed, holder_hash, "insurance")
    record: dict[str, Any] = {"holder_hash": holder_hash, "policies": [], "claims": []}
    insured, claimed = _share(r) < 0.70, _share(r) < 1 / 7  # 1/7 of 70%: ~10% of holders
    parcels = [p for c in land_record["certificates"] for p in c["parcels"]]
    if not insured or not parcels:
        return record
    seasons = [(crop, season) for crop in CROPS if (season := crop.season(as_of))]
    crop, (start, end) = r.choice(seasons)
    chosen = r.sample(parcels, r.randint(1, len(parcels)))
    area = sum((Decimal(p["area_mu"]) for p in chosen), Decimal(0))
    number = f"PICC{start.year}{r.randrange(10**8):08d}"
    record["policies"].append({
        "number": number, "crop": crop.name, "insured_area_mu": str(area),
        "sum_insured_yuan": str((area * crop.yuan_per_mu).quantize(Decimal("0.01"))),
        "start": start.isoformat(), "end": end.isoformat(), "status": "active",
        "parcel_codes": sorted(p["code"] for p in chosen)})
    if claimed:
        day = start + timedelta(days=r.randint(0, max((min(as_of, end) - start).days, 0)))
        record["claims"].append({
            "policy_number": number, "event": r.choice(EVENTS), "event_date": day.isoformat(),
            "loss_ratio": str(Decimal(r.randint(20, 80)).scaleb(-2)), "status": "assessed"})
    return record


def policy(holder_hash: str, crop_name: str, on: date,
           land_record: dict[str, Any]) -> dict[str, Any]:
    """A policy on ``crop_name`` covering ``on`` and all the holder's parcels (for a claim
    planted on a holder without one): the crop's season around ``on`` (the calendar year for
    a crop not in :data:`CROPS`, at 1,000 yuan/mu), numbered from the holder and the season."""
    crop = next((c for c in CROPS if c.name == crop_name), None)
    season = crop.season(on) if crop else None
    start, end = season or (date(on.year, 1, 1), date(on.year, 12, 31))
    parcels = [p for c in land_record.get("certificates", ()) for p in c["parcels"]]
    area = sum((Decimal(p["area_mu"]) for p in parcels), Decimal(0)) or Decimal("10.00")
    digest = hashlib.sha256(f"{holder_hash}\x00{crop_name}\x00{start}".encode()).digest()
    return {
        "number": f"PICC{start.year}{int.from_bytes(digest[:4], 'big') % 10**8:08d}",
        "crop": crop_name, "insured_area_mu": str(area),
        "sum_insured_yuan": str((area * (crop.yuan_per_mu if crop else 1000))
                                .quantize(Decimal("0.01"))),
        "start": start.isoformat(), "end": end.isoformat(), "status": "active",
        "parcel_codes": sorted(p["code"] for p in parcels)}
