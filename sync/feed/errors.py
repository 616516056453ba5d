"""The pull's problem (docs/sync-protocol.md §4 and §7); ``device-required`` is the push's
(:class:`sync.push.errors.DeviceRequired`), one code for both."""

from __future__ import annotations

from core.errors import NongdaiError
from core.i18n import lazy_gettext


class ResyncRequired(NongdaiError):
    """The cursor cannot be continued (too old, unreadable, another coordinator's, or the
    scope changed): the device drops its replica and cursor and pulls from the start."""

    status, code = 412, "resync-required"
    title = lazy_gettext("Pull again from the start")

