"""Reason codes and what they mean, in words a farmer understands.

A decision's reasons are stable codes with parameters (``{"code": "parcel_pledged",
"params": {"parcels": ["P-01"]}}``); the text is rendered when it is read, in the reader's
language. Every code a policy can emit must be registered here: a new policy version naming an
unknown code is refused (:func:`lending.policy.engine.emitted_codes`), and so is an evaluation
that produces one.

Parameter conventions: a list (of parcel codes) is joined with the language's list separator;
``<name>_fen`` amounts are also given as ``<name>_yuan`` (two decimals, grouped); ``source``
and ``crop`` values are codes shown by their translated names; a missing parameter shows as
"?" rather than failing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core.i18n import current_locale, lazy_gettext

KINDS = ("decline", "field_check", "refer")

REASONS: dict[str, Any] = {
    # --- hard rules: decline ---
    "open_default": lazy_gettext(
        "You have a loan with us that is in default. Please settle it before applying again."),
    "not_certificate_holder": lazy_gettext(
        "These parcels are registered to someone else, not to you: %(parcels)s."),
    "contract_ends_before_loan": lazy_gettext(
        "Your land contract for these parcels ends before the loan would be repaid on "
        "%(maturity)s: %(parcels)s."),
    "parcel_pledged": lazy_gettext(
        "These parcels are already pledged to another lender: %(parcels)s."),
    "parcel_pledged_here": lazy_gettext(
        "These parcels already secure another loan with us: %(parcels)s."),
    "age_ineligible": lazy_gettext(
        "This loan is for borrowers aged %(min_age)s to %(max_age)s; our records give your age "
        "as %(age)s."),
    # --- a coordinator visits first: field_check ---
    "field_check_first_loan": lazy_gettext(
        "This is your first loan with us: your coordinator will visit to confirm your details "
        "and see your fields."),
    "field_check_identity": lazy_gettext(
        "Your profile is not verified yet: your coordinator will visit to confirm who you are."),
    "field_check_amount": lazy_gettext(
        "For amounts above %(threshold_yuan)s yuan, your coordinator visits your fields first."),
    # --- a loan officer decides: refer ---
    "data_source_unavailable": lazy_gettext(
        "We could not reach the %(source)s just now. We will try again shortly."),
    "crop_reference_missing": lazy_gettext(
        "We have no yield and price figures for %(crop)s in your county yet, so a loan officer "
        "will work out your limit."),
    "parcel_not_registered": lazy_gettext(
        "These parcels were not found in the land registry under the certificate given: "
        "%(parcels)s."),
    "duplicate_parcel": lazy_gettext(
        "These parcels were listed more than once and are counted once: %(parcels)s."),
    "area_mismatch": lazy_gettext(
        "The area you gave differs from the land registry by more than %(tolerance_pct)s%% for "
        "these parcels: %(parcels)s."),
    "insured_area_mismatch": lazy_gettext(
        "The insured area differs from the land registry by more than %(tolerance_pct)s%% for "
        "these parcels: %(parcels)s."),
    "field_area_mismatch": lazy_gettext(
        "The area your coordinator measured differs from the land registry by more than "
        "%(tolerance_pct)s%% for these parcels: %(parcels)s."),
    "field_identity_not_verified": lazy_gettext(
        "Your coordinator could not confirm your identity during the visit."),
    "field_parcel_not_visited": lazy_gettext(
        "Your coordinator has not yet visited these parcels: %(parcels)s."),
    "field_crop_not_seen": lazy_gettext(
        "Your coordinator did not see the crop growing on these parcels: %(parcels)s."),
    "claim_recent": lazy_gettext(
        "You recently had an insurance claim with a loss of %(loss_pct)s%%, so a loan officer "
        "will look at your application."),
    "amount_above_limit": lazy_gettext(
        "The amount you asked for (%(amount_yuan)s yuan) is above your credit limit "
        "(%(limit_yuan)s yuan)."),
    "above_auto_ceiling": lazy_gettext(
        "Amounts above %(ceiling_yuan)s yuan are decided by a loan officer."),
    "low_score": lazy_gettext(
        "Your application scored %(score)s, below the %(threshold)s we can approve "
        "automatically, so a loan officer will decide."),
    # --- emitted by the engine itself, never by a policy ---
    "policy_error": lazy_gettext(
        "Our credit rules could not be applied to your application, so a loan officer will "
        "decide."),
}

# Codes only the engine emits: a policy naming one is refused.
ENGINE_CODES = frozenset({"policy_error"})

_NAMES: dict[str, dict[str, Any]] = {
    "source": {"land": lazy_gettext("land registry"),
               "insurance": lazy_gettext("insurance registry")},
    "crop": {"rice": lazy_gettext("rice"), "wheat": lazy_gettext("wheat"),
             "corn": lazy_gettext("corn"), "soybean": lazy_gettext("soybean")},
}


def is_known(code: str) -> bool:
    return code in REASONS


def unknown(codes: set[str]) -> set[str]:
    """The codes in ``codes`` that have no explanation."""
    return {code for code in codes if code not in REASONS}


class _Params(dict[str, Any]):
    """Parameters for ``%`` formatting: a missing one reads as "?", never a KeyError."""

    def __missing__(self, key: str) -> str:
        return "?"


def _separator() -> str:
    """The list separator of the current locale (the Chinese enumeration comma for zh)."""
    return "、" if current_locale().startswith("zh") else ", "


def _yuan(fen: Any) -> str:
    try:
        return f"{Decimal(int(fen)).scaleb(-2):,.2f}"
    except (TypeError, ValueError, ArithmeticError):
        return "?"


def _shown(key: str, value: Any, separator: str) -> Any:
    if isinstance(value, list | tuple):
        return separator.join(str(_shown(key, item, separator)) for item in value)
    if key in _NAMES and isinstance(value, str):
        return str(_NAMES[key].get(value, value))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _formatted(params: dict[str, Any]) -> _Params:
    separator = _separator()
    shown = _Params({key: _shown(key, value, separator) for key, value in params.items()})
    for key, value in params.items():
        if key.endswith("_fen"):
            shown[key.removesuffix("_fen") + "_yuan"] = _yuan(value)
    return shown


def explain(code: str, params: dict[str, Any] | None = None) -> str:
    """``code`` explained in the current locale, with ``params`` filled in.

    A code that is not registered (read from an old stored decision, say) is returned as is:
    reading a decision never fails.
    """
    text = REASONS.get(code)
    if text is None:
        return code
    return str(text) % _formatted(dict(params or {}))
