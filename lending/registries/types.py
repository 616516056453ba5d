"""What the land-rights and insurance registries answer, as typed, immutable values.

Both clients (HTTP and imported extracts) return these; the decision engine's facts are built
from them. Areas are in mu as :class:`~decimal.Decimal` (registries give two decimals), money in
fen, dates as :class:`datetime.date`. ``holder_hash`` is the keyed hash of the holder's resident
ID number (``Farmer.id_number_hash``): the plaintext never leaves the bank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from core.errors import NongdaiError
from core.i18n import _, lazy_gettext

REASONS = ("timeout", "error", "malformed", "circuit-open")


@dataclass(frozen=True)
class Pledge:
    """A registered pledge (抵押) on a parcel's management right."""

    creditor: str
    amount_fen: int
    start: date
    end: date
    active: bool


@dataclass(frozen=True)
class Parcel:
    """One registered parcel (地块) of a land-contract certificate."""

    code: str  # 地块编码
    area_mu: Decimal
    land_class: str  # e.g. "paddy", "dry", "irrigated"
    village_code: str  # 12-digit division code
    latitude: Decimal
    longitude: Decimal
    contract_start: date
    contract_end: date
    pledges: tuple[Pledge, ...] = ()


@dataclass(frozen=True)
class Certificate:
    """A land-contract management right certificate (承包经营权证)."""

    number: str  # 承包经营权证号
    holder_hash: str
    holder_name: str
    parcels: tuple[Parcel, ...]


@dataclass(frozen=True)
class LandRecord:
    """Everything the land registry holds for one applicant's request."""

    holder_hash: str
    certificates: tuple[Certificate, ...]  # held by the applicant
    # certificates named in the application but held by someone else (their holder_hash differs);
    # numbers the registry does not know are simply absent from both
    foreign: tuple[Certificate, ...] = ()


@dataclass(frozen=True)
class InsurancePolicy:
    number: str
    crop: str
    insured_area_mu: Decimal
    sum_insured_fen: int  # whole policy
    start: date
    end: date
    status: str  # "active" | "expired" | "cancelled"
    parcel_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    policy_number: str
    event: str  # drought | flood | hail | pests | ...
    event_date: date
    loss_ratio: Decimal  # 0..1, assessed (定损)
    status: str  # "reported" | "assessed" | "paid" | "rejected"


@dataclass(frozen=True)
class InsuranceRecord:
    holder_hash: str
    policies: tuple[InsurancePolicy, ...] = ()
    claims: tuple[Claim, ...] = field(default_factory=tuple)


class RegistryUnavailable(NongdaiError):
    """A registry timed out, failed, or answered something we cannot read.

    Never shown as a 500 and never an approval: the application is referred with the reason
    ``data_source_unavailable`` and a retry is scheduled.
    """

    status, code = 503, "registry-unavailable"
    title = lazy_gettext("A data source is unavailable")

    def __init__(self, registry: str, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or _("The %(registry)s registry is unavailable (%(reason)s)",
                                     registry=registry, reason=reason))
        self.registry = registry  # "land" | "insurance"
        self.reason = reason  # one of REASONS

    def __repr__(self) -> str:
        return f"RegistryUnavailable({self.registry!r}, {self.reason!r})"
