"""Sign-up from a farmer's phone (``/auth/sign-up``): a code by SMS, then a pending profile."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from core import ratelimit
from core.api import Blueprint, OtpCode, Phone, Schema, digits_field, name_field, raises
from core.auth import signup
from core.auth.errors import OtpExpired, OtpInvalid, OtpLocked, OtpReplaced
from core.auth.schemas import OtpRequestSchema, OtpSentSchema, TokenSchema
from core.authz import access
from core.db import db
from core.errors import NotFound, RateLimited
from core.people.schemas import id_number_field
from core.people.services import FarmerExists

blp = Blueprint("sign-up", __name__, description="Farmers new to the bank sign up by phone")
HOUR = 3600


class SignUpSchema(Schema):
    phone = Phone(required=True)
    code = OtpCode(required=True)
    name = name_field(required=True)
    id_number = id_number_field()
    village_code = digits_field(12, required=True, metadata={
        "description": "The farmer's village: 12-digit administrative division code"})


def _limit(scope: str, value: str, setting: str) -> None:
    ratelimit.hit(ratelimit.key(scope, value), int(current_app.config[setting]), HOUR)


@blp.route("/auth/sign-up/code", methods=["POST"])
@access(public=True)
@blp.arguments(OtpRequestSchema)
@blp.response(202, OtpSentSchema)
@raises(RateLimited)
def request_sign_up_code(body: dict[str, Any]) -> dict[str, Any]:
    """Text a sign-up code to a phone (a registered farmer's phone gets a sign-in code)."""
    _limit("otp.client", request.remote_addr or "unknown", "NONGDAI_OTP_PER_CLIENT_PER_HOUR")
    _limit("otp.phone", body["phone"], "NONGDAI_OTP_PER_PHONE_PER_HOUR")
    signup.request_code(db.session, body["phone"])
    return {"expires_in": int(current_app.config["NONGDAI_OTP_SECONDS"])}


@blp.route("/auth/sign-up", methods=["POST"])
@access(public=True)
@blp.arguments(SignUpSchema)
@blp.response(200, TokenSchema)
@raises(OtpInvalid, OtpExpired, OtpLocked, OtpReplaced, signup.AlreadyRegistered,
        FarmerExists, NotFound, RateLimited)
def sign_up(body: dict[str, Any]) -> dict[str, Any]:
    """Create a pending profile with the code from the SMS, and sign in: applications wait
    for a coordinator's identity check before a decision.

    Like ``/auth/otp/verify`` it exchanges a one-time code for tokens (200, no
    ``Idempotency-Key``: the code itself is used once). A retry after a lost answer gets
    ``already-registered`` and the farmer signs in with a new code."""
    _limit("otp-verify.client", request.remote_addr or "unknown",
           "NONGDAI_OTP_VERIFY_PER_CLIENT_PER_HOUR")
    return signup.sign_up(db.session, **body)
