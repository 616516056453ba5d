"""Registry clients: the land-rights and insurance registries over HTTP, as typed results.

Endpoints (under each registry's base URL, ``NONGDAI_*_REGISTRY_URL``)::

    GET {land}/v1/holders/{holder_hash}/certificates   -> {"holder_hash", "certificates": [...]}
    GET {land}/v1/certificates/{number}                 -> one certificate, 404 when unknown
    GET {insurance}/v1/holders/{holder_hash}/policies   -> {"holder_hash", "policies", "claims"}

A holder the registry does not know answers 404, read as "holds nothing". The JSON is
``lending.registries.wire``'s; transport, retries, timeouts and the breaker are
``lending.registries.transport``'s. Every failure is a :class:`RegistryUnavailable`.

A bank that receives batch files instead of an API sets a registry's URL to ``extract:``;
those records come from the imported extract tables (``lending.registries.extracts``) and are
read in the caller's database session, see ``lending.registries.service``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from lending.registries import transport, wire
from lending.registries.config import INSURANCE, LAND, RegistryConfig
from lending.registries.types import Certificate, InsuranceRecord, LandRecord

_HOLDER_HASH = re.compile(r"[0-9a-f]{64}")


def _holder(holder_hash: str) -> str:
    """The hash as a path segment; anything else is a caller's bug, not the registry's."""
    if not _HOLDER_HASH.fullmatch(holder_hash):
        raise ValueError("holder_hash must be 64 lowercase hex characters (Farmer.id_number_hash)")
    return holder_hash


def wanted_numbers(certificate_numbers: Iterable[str]) -> tuple[str, ...]:
    """The distinct certificate numbers of a request, trimmed and in a stable order."""
    return tuple(sorted({n.strip() for n in certificate_numbers if n and n.strip()}))


class LandRegistryClient:
    """The land-rights registry (土地承包经营权确权登记) over HTTP."""

    registry = LAND

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config

    def records(self, holder_hash: str, certificate_numbers: Iterable[str] = ()) -> LandRecord:
        """The holder's certificates, plus the application's other numbers held by someone else.

        Numbers the holder holds need no second call; each other number is looked up on its
        own (an application names one or two): held by another holder it goes to ``foreign``,
        unknown it is left out.
        """
        held = self._held(_holder(holder_hash))
        have = {c.number for c in held}
        foreign: list[Certificate] = []
        for number in wanted_numbers(certificate_numbers):
            if number in have:
                continue
            found = self.certificate(number)
            if found is None:
                continue
            if found.holder_hash == holder_hash:  # the holder list lagged behind: trust both
                held.append(found)
                have.add(number)
            else:
                foreign.append(found)
        return LandRecord(holder_hash=holder_hash, certificates=tuple(held),
                          foreign=tuple(foreign))

    def certificate(self, number: str) -> Certificate | None:
        """One certificate by number; ``None`` when the registry never issued it."""
        return transport.get_json(self.config, self.registry,
                                  f"/v1/certificates/{quote(number, safe='')}",
                                  "/v1/certificates/{number}", wire.certificate_from_json)

    def _held(self, holder_hash: str) -> list[Certificate]:
        record = transport.get_json(self.config, self.registry,
                                    f"/v1/holders/{holder_hash}/certificates",
                                    "/v1/holders/{hash}/certificates",
                                    lambda data: _checked_land(data, holder_hash))
        return list(record.certificates) if record else []


def _checked_land(data: object, holder_hash: str) -> LandRecord:
    """The answer must be about the holder asked for, and hold only their certificates."""
    record = wire.land_from_json(data)
    if record.holder_hash != holder_hash or any(
            c.holder_hash != holder_hash for c in record.certificates):
        raise wire.MalformedAnswer("answer is about another holder")
    return record


class InsuranceRegistryClient:
    """The agricultural-insurance registry (农业保险) over HTTP: policies and claims."""

    registry = INSURANCE

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config

    def records(self, holder_hash: str) -> InsuranceRecord:
        record = transport.get_json(self.config, self.registry,
                                    f"/v1/holders/{_holder(holder_hash)}/policies",
                                    "/v1/holders/{hash}/policies",
                                    lambda data: _checked_insurance(data, holder_hash))
        return record or InsuranceRecord(holder_hash=holder_hash)


def _checked_insurance(data: object, holder_hash: str) -> InsuranceRecord:
    record = wire.insurance_from_json(data)
    if record.holder_hash != holder_hash:
        raise wire.MalformedAnswer("answer is about another holder")
    return record


def reset_breakers() -> None:
    """Close every breaker (and session) of this process: for tests and a settings reload."""
    transport.reset()
