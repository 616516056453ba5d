"""Sign-in endpoints (``/auth/...``) and coordinators' devices (``/devices``)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, request

from core import ratelimit
from core.api import Blueprint, PageArgs, page_schema, paginate, raises
from core.auth import devices, login, otp, rotation, sessions
from core.auth.errors import (
    DeviceRevoked,
    DeviceTaken,
    InvalidCredentials,
    InvalidToken,
    OtpExpired,
    OtpInvalid,
    OtpLocked,
    OtpReplaced,
    RefreshReused,
)
from core.auth.models import Device
from core.auth.schemas import (
    DeviceSchema,
    LoginSchema,
    MeSchema,
    OtpRequestSchema,
    OtpSentSchema,
    OtpVerifySchema,
    RefreshSchema,
    TokenSchema,
)
from core.authz import access, current_principal
from core.db import db
from core.errors import RateLimited

blp = Blueprint("auth", __name__, description="Sign-in, tokens and coordinators' devices")

HOUR = 3600


def _limit(scope: str, value: str, setting: str) -> None:
    ratelimit.hit(ratelimit.key(scope, value), int(current_app.config[setting]), HOUR)


def _client() -> str:
    return request.remote_addr or "unknown"


@blp.route("/auth/otp", methods=["POST"])
@access(public=True)
@blp.arguments(OtpRequestSchema)
@blp.response(202, OtpSentSchema)
@raises(RateLimited)
def request_otp(body: dict[str, Any]) -> dict[str, Any]:
    """Text a one-time code to a farmer's phone (the same answer for unknown numbers)."""
    _limit("otp.client", _client(), "NONGDAI_OTP_PER_CLIENT_PER_HOUR")
    _limit("otp.phone", body["phone"], "NONGDAI_OTP_PER_PHONE_PER_HOUR")
    otp.request_code(db.session, body["phone"])
    return {"expires_in": otp.otp_seconds()}


@blp.route("/auth/otp/verify", methods=["POST"])
@access(public=True)
@blp.arguments(OtpVerifySchema)
@blp.response(200, TokenSchema)
@raises(OtpInvalid, OtpExpired, OtpLocked, OtpReplaced, RateLimited)
def verify_otp(body: dict[str, Any]) -> dict[str, Any]:
    """Exchange the one-time code for tokens."""
    _limit("otp-verify.client", _client(), "NONGDAI_OTP_VERIFY_PER_CLIENT_PER_HOUR")
    return otp.verify_code(db.session, body["phone"], body["code"])


@blp.route("/auth/login", methods=["POST"])
@access(public=True)
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@raises(InvalidCredentials, DeviceTaken, DeviceRevoked, RateLimited)
def sign_in(body: dict[str, Any]) -> dict[str, Any]:
    """Staff and coordinators sign in with a password; coordinators may bind a device."""
    _limit("login.client", _client(), "NONGDAI_LOGIN_PER_CLIENT_PER_HOUR")
    username = body["username"]  # stripped and case-folded once, by LoginSchema
    account = ratelimit.key("login.user", username)
    limit = int(current_app.config["NONGDAI_LOGIN_PER_USER_PER_HOUR"])
    with ratelimit.failures(account, limit, HOUR, InvalidCredentials):
        return login.sign_in(db.session, username, body["password"], body["device"])


@blp.route("/auth/refresh", methods=["POST"])
@access(public=True)
@blp.arguments(RefreshSchema)
@blp.response(200, TokenSchema)
@raises(InvalidToken, RefreshReused)
def refresh(body: dict[str, Any]) -> dict[str, Any]:
    """Trade a refresh token for a new pair; a retry within the grace window gets the same."""
    return rotation.refresh(db.session, body["refresh_token"])


@blp.route("/auth/logout", methods=["POST"])
@access()
@blp.response(204)
def sign_out() -> None:
    """End the current session; its tokens stop working at once."""
    sessions.sign_out(db.session, current_principal().session_id)


@blp.route("/auth/me", methods=["GET"])
@access()
@blp.response(200, MeSchema)
def me() -> dict[str, Any]:
    """Who the access token belongs to."""
    return sessions.whoami(db.session, current_principal())


@blp.route("/devices", methods=["GET"])
@access("admin", "coordinator")
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_schema(DeviceSchema, "DevicePage"))
def list_devices(args: dict[str, Any]) -> dict[str, Any]:
    """Devices: all of them for admins, their own for a coordinator."""
    return paginate(db.session, devices.listing(current_principal()), Device.public_id, args)


@blp.route("/devices/<uuid:device_id>/revoke", methods=["POST"])
@access("admin", "coordinator")
@blp.response(200, DeviceSchema)
def revoke_device(device_id: uuid.UUID) -> Any:
    """Revoke a device and end its sessions (an admin, or the coordinator who owns it)."""
    device = devices.get_visible(db.session, current_principal(), device_id)
    devices.revoke(db.session, device)
    return device
