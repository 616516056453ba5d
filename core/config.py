"""Configuration: read once from ``NONGDAI_*`` environment variables, in this module only.

Every figure here is policy that a bank sets; none is a constant elsewhere in the code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parent.parent

# Demo keys: fine for the embedded default, refused in production.
DEMO_SECRET_KEY = "nongdai-demo-secret-key-do-not-use-in-production"  # noqa: S105 - refused in production
DEMO_DATA_KEY = "bm9uZ2RhaS1kZW1vLWRhdGEta2V5LTMyLWJ5dGVzISE="  # base64 of 32 demo bytes


# ``test`` is for automated suites that want production's strictness named apart.
ENVIRONMENTS = ("development", "production", "test")


class ConfigError(RuntimeError):
    """The configuration cannot run (for example demo keys in production)."""


def _env(environ: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    return environ.get(f"NONGDAI_{name}", default)


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _env(environ, name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"NONGDAI_{name} must be an integer, got {raw!r}") from exc


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _env(environ, name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _environment(value: Any) -> str:
    """The deployment kind; an unknown one (``prod``) must not fall back to development and
    its demo keys, so it stops the start instead."""
    if value not in ENVIRONMENTS:
        raise ConfigError(f"NONGDAI_ENV must be one of {', '.join(ENVIRONMENTS)}, got {value!r}")
    return str(value)


def _timezone(value: Any) -> str:
    """An IANA zone name (``Asia/Shanghai``): it defines the bank's business date for jobs."""
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"NONGDAI_BUSINESS_TIMEZONE is not a known time zone: {value!r}"
                          ) from exc
    return str(value)


def load(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from the environment."""
    env = os.environ if environ is None else environ
    instance = Path(_env(env, "INSTANCE_PATH") or ROOT / "instance")
    database_url = _env(env, "DATABASE_URL") or f"sqlite:///{instance / 'nongdai.sqlite3'}"
    return {
        "NONGDAI_ENV": _environment(_env(env, "ENV") or "development"),
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": _env(env, "SECRET_KEY", DEMO_SECRET_KEY),
        "NONGDAI_DATA_KEY": _env(env, "DATA_KEY", DEMO_DATA_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "NONGDAI_HOST": _env(env, "HOST", "127.0.0.1"),
        "NONGDAI_PORT": _int(env, "PORT", 5000),
        "NONGDAI_SEED_DEMO": _bool(env, "SEED_DEMO", True),
        "NONGDAI_PROXY_HOPS": _int(env, "PROXY_HOPS", 0),
        "NONGDAI_LOG_LEVEL": _env(env, "LOG_LEVEL", "INFO"),
        # The calendar day of the bank (interest accrual, due dates, jobs' business dates).
        "NONGDAI_BUSINESS_TIMEZONE": _timezone(_env(env, "BUSINESS_TIMEZONE") or "Asia/Shanghai"),
        # pins the business date (tests, the season simulation); unset in production
        "NONGDAI_BUSINESS_DATE": _env(env, "BUSINESS_DATE"),
        # The first business date a daily job catches up from when it has never run (default:
        # today); see docs/operations.md.
        "NONGDAI_JOBS_START": _env(env, "JOBS_START"),
        # External services (used by the origination issue; loopback reference services by default).
        "NONGDAI_LAND_REGISTRY_URL": _env(env, "LAND_REGISTRY_URL", ""),
        "NONGDAI_INSURANCE_REGISTRY_URL": _env(env, "INSURANCE_REGISTRY_URL", ""),
        # Registry calls: a deadline per call, retries of idempotent reads with backoff, a
        # circuit breaker per registry and process, and a short cache of answers in the database.
        "NONGDAI_REGISTRY_TIMEOUT_MS": _int(env, "REGISTRY_TIMEOUT_MS", 2_000),
        "NONGDAI_REGISTRY_RETRIES": _int(env, "REGISTRY_RETRIES", 2),
        "NONGDAI_REGISTRY_BACKOFF_MS": _int(env, "REGISTRY_BACKOFF_MS", 50),
        "NONGDAI_REGISTRY_BREAKER_FAILURES": _int(env, "REGISTRY_BREAKER_FAILURES", 5),
        "NONGDAI_REGISTRY_BREAKER_RESET_SECONDS": _int(env, "REGISTRY_BREAKER_RESET_SECONDS", 30),
        "NONGDAI_REGISTRY_CACHE_SECONDS": _int(env, "REGISTRY_CACHE_SECONDS", 300),
        # Threads per process that ask the two registries at once for an application.
        "NONGDAI_REGISTRY_WORKERS": _int(env, "REGISTRY_WORKERS", 16),
        # An imported registry extract (``extract:``) older than this is refused; 0: never.
        "NONGDAI_REGISTRY_EXTRACT_MAX_AGE_DAYS": _int(env, "REGISTRY_EXTRACT_MAX_AGE_DAYS", 0),
        # An application referred because a registry was down is decided again after this.
        "NONGDAI_REGISTRY_RETRY_MINUTES": _int(env, "REGISTRY_RETRY_MINUTES", 15),
        # Drafts and applications waiting on the farmer or a field check expire after this.
        "NONGDAI_APPLICATION_EXPIRY_DAYS": _int(env, "APPLICATION_EXPIRY_DAYS", 30),
        # Sync: the limits and checks of the device protocol, see docs/sync-protocol.md.
        "NONGDAI_SYNC_BATCH_MAX": _int(env, "SYNC_BATCH_MAX", 500),
        "NONGDAI_SYNC_PUSH_MAX_BYTES": _int(env, "SYNC_PUSH_MAX_BYTES", 4 * 1024 * 1024),
        "NONGDAI_SYNC_CLOCK_TOLERANCE_MINUTES": _int(env, "SYNC_CLOCK_TOLERANCE_MINUTES", 10),
        "NONGDAI_SYNC_MAX_OFFLINE_DAYS": _int(env, "SYNC_MAX_OFFLINE_DAYS", 30),
        "NONGDAI_SYNC_FEED_RETENTION_DAYS": _int(env, "SYNC_FEED_RETENTION_DAYS", 90),
        "NONGDAI_SYNC_PULL_LIMIT_MAX": _int(env, "SYNC_PULL_LIMIT_MAX", 1000),
        "NONGDAI_SYNC_UPLOAD_MAX_BYTES": _int(env, "SYNC_UPLOAD_MAX_BYTES", 10 * 1024 * 1024),
        "NONGDAI_SYNC_UPLOAD_DIR": _env(env, "SYNC_UPLOAD_DIR") or str(instance / "uploads"),
        # Where photos are kept: "filesystem" (NONGDAI_SYNC_UPLOAD_DIR) or "module:Class".
        "NONGDAI_SYNC_STORE": _env(env, "SYNC_STORE", "filesystem"),
        "NONGDAI_PLAUSIBLE_GPS_METERS": _int(env, "PLAUSIBLE_GPS_METERS", 500),
        "NONGDAI_PLAUSIBLE_SPEED_KMH": _int(env, "PLAUSIBLE_SPEED_KMH", 120),
        # Servicing (see docs/servicing.md). Penalty interest on overdue amounts, as a
        # percentage of the contract rate (PBoC practice: 130-150 %).
        "NONGDAI_PENALTY_RATE_PCT": _int(env, "PENALTY_RATE_PCT", 150),
        # Payment channels: JSON {"channel code": "shared secret"} for signed notifications.
        "NONGDAI_PAYMENT_CHANNEL_SECRETS": _env(env, "PAYMENT_CHANNEL_SECRETS",
                                                '{"demo-pay": "demo-channel-secret"}'),
        # Reminders: days before a due date, and days after a missed one, an SMS goes out.
        "NONGDAI_REMINDER_DAYS_BEFORE": _env(env, "REMINDER_DAYS_BEFORE", "3"),
        "NONGDAI_REMINDER_DAYS_AFTER": _env(env, "REMINDER_DAYS_AFTER", "1,7,30"),
        # A post-loan visit is asked for this many days before a loan's harvest due date.
        "NONGDAI_HARVEST_VISIT_DAYS": _int(env, "HARVEST_VISIT_DAYS", 14),
        # Loans per chunk (one commit each) in the daily job.
        "NONGDAI_DAILY_CHUNK": _int(env, "DAILY_CHUNK", 20_000),
        # An insurance claim with an assessed loss ratio at or above this opens relief (percent).
        "NONGDAI_RELIEF_LOSS_RATIO_PCT": _int(env, "RELIEF_LOSS_RATIO_PCT", 30),
        # Where `flask payouts export` writes payout instruction files for the core system.
        "NONGDAI_PAYOUT_EXPORT_DIR": _env(env, "PAYOUT_EXPORT_DIR") or str(instance / "payouts"),
        # Staff review: a reviewer approves up to this amount; above it needs the approver role.
        "NONGDAI_REVIEWER_AUTHORITY_FEN": _int(env, "REVIEWER_AUTHORITY_FEN", 5_000_000),
        # Languages: Chinese first; English when the client asks for it (Accept-Language).
        "NONGDAI_DEFAULT_LOCALE": _env(env, "DEFAULT_LOCALE", "zh_CN"),
        # SMS: "log" writes messages to instance/sms.log (no gateway needed), or "module:Class".
        "NONGDAI_SMS_SENDER": _env(env, "SMS_SENDER", "log"),
        # Limits
        "MAX_CONTENT_LENGTH": _int(env, "MAX_BODY_BYTES", 256 * 1024),
        "NONGDAI_PAGE_SIZE_DEFAULT": _int(env, "PAGE_SIZE_DEFAULT", 50),
        "NONGDAI_PAGE_SIZE_MAX": _int(env, "PAGE_SIZE_MAX", 200),
        "NONGDAI_ACCESS_TOKEN_SECONDS": _int(env, "ACCESS_TOKEN_SECONDS", 15 * 60),
        "NONGDAI_REFRESH_TOKEN_SECONDS": _int(env, "REFRESH_TOKEN_SECONDS", 30 * 24 * 3600),
        # A refresh token just rotated may be presented again this long (its answer was lost on
        # a weak network) and gets the same successor instead of revoking the session.
        "NONGDAI_REFRESH_GRACE_SECONDS": _int(env, "REFRESH_GRACE_SECONDS", 30),
        "NONGDAI_OTP_SECONDS": _int(env, "OTP_SECONDS", 5 * 60),
        "NONGDAI_OTP_MAX_TRIES": _int(env, "OTP_MAX_TRIES", 5),
        "NONGDAI_OTP_PER_PHONE_PER_HOUR": _int(env, "OTP_PER_PHONE_PER_HOUR", 5),
        "NONGDAI_OTP_PER_CLIENT_PER_HOUR": _int(env, "OTP_PER_CLIENT_PER_HOUR", 30),
        "NONGDAI_LOGIN_PER_USER_PER_HOUR": _int(env, "LOGIN_PER_USER_PER_HOUR", 10),
        "NONGDAI_LOGIN_PER_CLIENT_PER_HOUR": _int(env, "LOGIN_PER_CLIENT_PER_HOUR", 60),
        # Lookups of a farmer by ID number, per signed-in caller (slows probing of numbers).
        "NONGDAI_LOOKUP_PER_USER_PER_HOUR": _int(env, "LOOKUP_PER_USER_PER_HOUR", 300),
        "NONGDAI_IDEMPOTENCY_HOURS": _int(env, "IDEMPOTENCY_HOURS", 48),
        "NONGDAI_DB_BUSY_TIMEOUT_MS": _int(env, "DB_BUSY_TIMEOUT_MS", 10_000),
        # PIPL consents: the longest validity a farmer can grant in one go, in days.
        "NONGDAI_CONSENT_MAX_DAYS": _int(env, "CONSENT_MAX_DAYS", 365),
        # Auth: coordinators' device-bound sessions last longer (days offline between refreshes).
        "NONGDAI_DEVICE_REFRESH_TOKEN_SECONDS": _int(env, "DEVICE_REFRESH_TOKEN_SECONDS",
                                                     90 * 24 * 3600),
        "NONGDAI_OTP_VERIFY_PER_CLIENT_PER_HOUR": _int(env, "OTP_VERIFY_PER_CLIENT_PER_HOUR", 60),
        "NONGDAI_SESSION_TOUCH_SECONDS": _int(env, "SESSION_TOUCH_SECONDS", 60),  # 0: never
        # Outbox (SMS): retries with exponential backoff, then give up.
        "NONGDAI_OUTBOX_MAX_ATTEMPTS": _int(env, "OUTBOX_MAX_ATTEMPTS", 6),
        "NONGDAI_OUTBOX_BACKOFF_SECONDS": _int(env, "OUTBOX_BACKOFF_SECONDS", 30),
        "NONGDAI_OUTBOX_BACKOFF_MAX_SECONDS": _int(env, "OUTBOX_BACKOFF_MAX_SECONDS", 3600),
        "NONGDAI_OUTBOX_LEASE_SECONDS": _int(env, "OUTBOX_LEASE_SECONDS", 60),
    }


def check_production(config: Mapping[str, Any]) -> None:
    """Refuse to run in production on the demo keys or the embedded database.

    Also checks what overrides (``create_app({...})``) may have changed since :func:`load`.
    """
    _environment(config.get("NONGDAI_ENV", "development"))
    _timezone(config.get("NONGDAI_BUSINESS_TIMEZONE", "Asia/Shanghai"))
    if config.get("NONGDAI_ENV") != "production":
        return
    problems = []
    if config.get("SECRET_KEY") in (None, "", DEMO_SECRET_KEY):
        problems.append("NONGDAI_SECRET_KEY is the demo key")
    if config.get("NONGDAI_DATA_KEY") in (None, "", DEMO_DATA_KEY):
        problems.append("NONGDAI_DATA_KEY is the demo key")
    if config.get("NONGDAI_SMS_SENDER", "log") == "log":
        problems.append("NONGDAI_SMS_SENDER is the demo log sender (it keeps codes in a file)")
    if "demo-channel-secret" in str(config.get("NONGDAI_PAYMENT_CHANNEL_SECRETS", "")):
        problems.append("NONGDAI_PAYMENT_CHANNEL_SECRETS holds the demo channel secret")
    for name in ("NONGDAI_LAND_REGISTRY_URL", "NONGDAI_INSURANCE_REGISTRY_URL"):
        if not config.get(name):
            problems.append(f"{name} is not set (the reference registry is for the demo)")
    if len(str(config.get("SECRET_KEY", ""))) < 32:
        problems.append("NONGDAI_SECRET_KEY must be at least 32 characters")
    if problems:
        raise ConfigError("refusing to start in production: " + "; ".join(problems))
