"""Reason codes explained: every code a shipped policy can emit has a text, rendered with its
parameters in English and in Chinese."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.i18n import in_locale, msgid
from lending.policy import engine, reasons
from tests.lending.test_policy_helpers import CASES, MODEL, case_facts

JDM_DIR = Path(engine.__file__).parent / "jdm"
SHIPPED = sorted(JDM_DIR.glob("credit-*.json"))


def test_policies_are_shipped() -> None:
    assert [path.name for path in SHIPPED] == ["credit-2026.1.json", "credit-2026.2.json"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_every_code_a_shipped_policy_can_emit_is_explained(path: Path) -> None:
    model = json.loads(path.read_text(encoding="utf-8"))
    codes = engine.emitted_codes(model)
    assert codes
    assert reasons.unknown(codes) == set()
    engine.check_codes(model)  # kinds too


def test_the_registry_holds_only_codes_something_emits() -> None:
    assert set(reasons.REASONS) == set(CASES) | reasons.ENGINE_CODES


@pytest.mark.parametrize("code", sorted(reasons.REASONS))
def test_each_explanation_fills_its_placeholders(app: Any, code: str) -> None:
    params = _params_for(code)
    with app.app_context(), in_locale("en"):
        text = reasons.explain(code, params)
    assert "%(" not in text, text
    assert "?" not in text, text
    assert text[0].isupper()
    assert text.endswith(".")


def _params_for(code: str) -> dict[str, Any]:
    if code == "policy_error":
        return {}
    outcome = engine.decide("2026.1", MODEL, case_facts(code))
    return next(r["params"] for r in outcome.reasons if r["code"] == code)


def test_english_is_the_message_id_with_the_parameters(app: Any) -> None:
    params = {"parcels": ["P-01", "P-02"]}
    with app.app_context(), in_locale("en"):
        text = reasons.explain("parcel_pledged", params)
    assert text == msgid(reasons.REASONS["parcel_pledged"]) % {"parcels": "P-01, P-02"}
    assert text == "These parcels are already pledged to another lender: P-01, P-02."


def test_chinese_gives_a_text_with_the_parameters(app: Any) -> None:
    with app.app_context(), in_locale("zh_CN"):
        text = reasons.explain("parcel_pledged", {"parcels": ["P-01", "P-02"]})
        source = reasons.explain("data_source_unavailable", {"source": "land"})
    assert text
    assert "P-01、P-02" in text
    assert source
    assert "%(" not in source


def test_amounts_in_fen_are_shown_in_yuan(app: Any) -> None:
    with app.app_context(), in_locale("en"):
        text = reasons.explain("amount_above_limit",
                               {"amount_fen": 1_283_101, "limit_fen": 1_283_100})
    assert "12,831.01 yuan" in text
    assert "12,831.00 yuan" in text


def test_names_of_registries_and_crops_are_words(app: Any) -> None:
    with app.app_context(), in_locale("en"):
        assert "land registry" in reasons.explain("data_source_unavailable", {"source": "land"})
        assert "for rice in" in reasons.explain("crop_reference_missing", {"crop": "rice"})
        assert "for kiwi in" in reasons.explain("crop_reference_missing", {"crop": "kiwi"})


def test_reading_an_old_or_odd_reason_never_fails(app: Any) -> None:
    with app.app_context(), in_locale("en"):
        assert reasons.explain("retired_code", {"x": 1}) == "retired_code"
        assert "?" in reasons.explain("parcel_pledged", {})
        assert "? yuan" in reasons.explain("above_auto_ceiling", {"ceiling_fen": "lots"})
