"""Authentication errors: each a stable ``code`` in the problem document.

Sign-in failures say as little as possible: an unknown user, a wrong password and an inactive
account all answer ``invalid-credentials``.
"""

from __future__ import annotations

from core.errors import Conflict, Forbidden, Unauthorized
from core.i18n import lazy_gettext


class InvalidToken(Unauthorized):
    code = "invalid-token"
    title = lazy_gettext("The access or refresh token is not valid")


class InvalidCredentials(Unauthorized):
    code = "invalid-credentials"
    title = lazy_gettext("Wrong username or password")


class OtpInvalid(Unauthorized):
    code = "otp-invalid"
    title = lazy_gettext("Wrong or unknown one-time code")


class OtpExpired(Unauthorized):
    code = "otp-expired"
    title = lazy_gettext("The one-time code has expired; request a new one")


class OtpReplaced(Unauthorized):
    code = "otp-replaced"
    title = lazy_gettext("This code was replaced by a newer one; use the code in the latest SMS")


class OtpLocked(Unauthorized):
    code = "otp-locked"
    title = lazy_gettext("Too many wrong codes; request a new one")


class RefreshReused(Unauthorized):
    code = "refresh-reused"
    title = lazy_gettext("This refresh token was already used; the session is revoked")


class DeviceTaken(Conflict):
    code = "device-taken"
    title = lazy_gettext("This device is registered to another coordinator")


class DeviceRevoked(Forbidden):
    code = "device-revoked"
    title = lazy_gettext("This device has been revoked")
