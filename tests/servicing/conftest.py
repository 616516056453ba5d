"""Fixtures for servicing: lending's reference registry over loopback HTTP (``registry``,
``reference_registry``, ``registry_config``), shared with tests/lending."""

from tests.lending.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    reference_registry,
    registry,
    registry_config,
)
