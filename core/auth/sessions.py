"""Placeholder: being written."""

from core.authz import Principal


def authenticate(token: str) -> Principal:
    raise NotImplementedError
