"""Fixtures for lending: a reference registry served over loopback HTTP for the whole run.

``reference_registry`` is one server (waitress in a thread) for the session; ``registry``
resets it (records, faults, request log), forgets this process's circuit breakers and points
the test's ``app`` at it, with the production timeout and a short backoff. Tests plant
records and switch faults through its ``/_control`` API, and read what it served there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lending.registries import clients
from lending.registries.config import RegistryConfig, config_from
from lending.registries.reference import RunningRegistry, start_in_thread

HOLDER = "a1" * 32  # keyed hashes are 64 hex characters
OTHER = "b2" * 32


@pytest.fixture(scope="session")
def reference_registry() -> Iterator[RunningRegistry]:
    running = start_in_thread(host="127.0.0.1", port=0, latency_ms=0, seed="tests")
    yield running
    running.stop()


@pytest.fixture
def registry(reference_registry: RunningRegistry, app: Any) -> Iterator[RunningRegistry]:
    """The reference registry, reset, with ``app`` configured to use it."""
    reference_registry.reset()
    clients.reset_breakers()
    app.config.update({
        "NONGDAI_LAND_REGISTRY_URL": reference_registry.land_url,
        "NONGDAI_INSURANCE_REGISTRY_URL": reference_registry.insurance_url,
        "NONGDAI_REGISTRY_TIMEOUT_MS": 2_000,
        "NONGDAI_REGISTRY_RETRIES": 2,
        "NONGDAI_REGISTRY_BACKOFF_MS": 10,
    })
    yield reference_registry
    reference_registry.reset()  # wakes any request still hanging on a "timeout" fault
    clients.reset_breakers()


@pytest.fixture
def registry_config(registry: RunningRegistry, app: Any) -> RegistryConfig:
    """The registry settings of ``app`` as the lookups take them."""
    return config_from(app.config)
