"""The registry settings as a plain value, so that threads without an app context can use them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXTRACT = "extract:"  # a registry URL that names the imported extract tables instead of HTTP
LAND, INSURANCE = "land", "insurance"
REGISTRIES = (LAND, INSURANCE)


@dataclass(frozen=True)
class RegistryConfig:
    """What a lookup needs from ``app.config``; frozen, so it can key per-process state."""

    land_url: str
    insurance_url: str
    timeout_ms: int = 2_000
    retries: int = 2
    backoff_ms: int = 50
    breaker_failures: int = 5
    breaker_reset_seconds: int = 30
    cache_seconds: int = 300
    extract_max_age_days: int = 0  # 0: an imported extract never goes stale
    workers: int = 16  # threads of the process-wide pool that runs lookups concurrently

    def url(self, registry: str) -> str:
        return self.land_url if registry == LAND else self.insurance_url

    def is_extract(self, registry: str) -> bool:
        return self.url(registry).strip() == EXTRACT

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000


def config_from(config: Mapping[str, Any]) -> RegistryConfig:
    """Build from a Flask config (``current_app.config``); read once per lookup, in a request."""
    return RegistryConfig(
        land_url=str(config["NONGDAI_LAND_REGISTRY_URL"] or "").rstrip("/"),
        insurance_url=str(config["NONGDAI_INSURANCE_REGISTRY_URL"] or "").rstrip("/"),
        timeout_ms=int(config["NONGDAI_REGISTRY_TIMEOUT_MS"]),
        retries=int(config["NONGDAI_REGISTRY_RETRIES"]),
        backoff_ms=int(config["NONGDAI_REGISTRY_BACKOFF_MS"]),
        breaker_failures=int(config["NONGDAI_REGISTRY_BREAKER_FAILURES"]),
        breaker_reset_seconds=int(config["NONGDAI_REGISTRY_BREAKER_RESET_SECONDS"]),
        cache_seconds=int(config["NONGDAI_REGISTRY_CACHE_SECONDS"]),
        extract_max_age_days=int(config.get("NONGDAI_REGISTRY_EXTRACT_MAX_AGE_DAYS", 0)),
        workers=int(config.get("NONGDAI_REGISTRY_WORKERS", 16)),
    )
