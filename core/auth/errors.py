"""Authentication errors: each a stable ``code`` in the problem document.

Sign-in failures say as little as possible: an unknown user, a wrong password and an inactive
account all answer ``invalid-credentials``.
"""

from __future__ import annotations

from core.errors import Conflict, Forbidden, Unauthorized


class InvalidToken(Unauthorized):
    code, title = "invalid-token", "The access or refresh token is not valid"


class InvalidCredentials(Unauthorized):
    code, title = "invalid-credentials", "Wrong username or password"


class OtpInvalid(Unauthorized):
    code, title = "otp-invalid", "Wrong or unknown one-time code"


class OtpExpired(Unauthorized):
    code, title = "otp-expired", "The one-time code has expired; request a new one"


class OtpReplaced(Unauthorized):
    code, title = "otp-replaced", ("This code was replaced by a newer one; "
                                   "use the code in the latest SMS")


class OtpLocked(Unauthorized):
    code, title = "otp-locked", "Too many wrong codes; request a new one"


class RefreshReused(Unauthorized):
    code, title = "refresh-reused", "This refresh token was already used; the session is revoked"


class DeviceTaken(Conflict):
    code, title = "device-taken", "This device is registered to another coordinator"


class DeviceRevoked(Forbidden):
    code, title = "device-revoked", "This device has been revoked"
