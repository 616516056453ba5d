"""Push and conflict-resolution errors, each with its stable ``code``."""

from __future__ import annotations

from core.errors import Conflict, Forbidden
from core.i18n import lazy_gettext


class DeviceRequired(Forbidden):
    """Pushing needs a coordinator's session bound to a device (signed in with ``device``)."""

    code = "device-required"
    title = lazy_gettext("Sign in on a registered device to sync")


class AlreadyResolved(Conflict):
    code = "conflict-resolved"
    title = lazy_gettext("This conflict was already resolved another way")


class NoResolver(Conflict):
    code = "no-resolver"
    title = lazy_gettext("The device's value cannot be taken for this kind of record")
