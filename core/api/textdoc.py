"""What text a request accepts, stated exactly in the OpenAPI document.

- No request string may hold NUL (:class:`~core.api.schemas.Schema` refuses it): each one's
  pattern says so.
- :class:`~core.api.fields.Text` removes surrounding whitespace before it validates, so the raw
  lengths of its validators do not apply to what a client sends (``" 张三 "`` is a valid
  two-character name). Its pattern accepts exactly what the server accepts, surrounding
  whitespace included (a test holds them together), and it carries an example (so that
  generators need not invent one from the pattern).
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from core.api.fields import WHITESPACE, Identifier, Text
from core.api.schemas import ResponseSchema, Schema

NO_NUL = "^[^\\x00]*$"
_WS, _KEPT, _ANY = f"[{WHITESPACE}]", f"[^{WHITESPACE}\\x00]", "[^\\x00]"


def _length_pattern(low: int, high: int | None) -> str:
    """What a trimmed text of ``low`` to ``high`` characters looks like (between the blanks)."""
    if high == 0:
        return ""
    middle = f"{_ANY}*" if high is None else f"{_ANY}{{{max(low - 2, 0)},{high - 2}}}"
    if high == 1:
        core = _KEPT
    elif low <= 1:
        core = f"{_KEPT}(?:{middle}{_KEPT})?"
    else:
        core = f"{_KEPT}{middle}{_KEPT}"
    return f"(?:{core})" + ("?" if low == 0 else "")


def text_pattern(field: Text) -> str | None:
    """The whole input a :class:`Text` field accepts, surrounding whitespace included."""
    if isinstance(field, Identifier):
        return f"^{_WS}*(?:{field.input_shape}){_WS}*$"
    lengths = [v for v in field.validators if isinstance(v, validate.Length)]
    if not lengths or lengths[0].equal is not None:
        return None
    low, high = lengths[0].min or 0, lengths[0].max
    if low == 0 and high is None:
        return None
    return f"^{_WS}*{_length_pattern(low, high)}{_WS}*$"


def _sentence(text: str) -> str:
    return text if text.endswith((".", "?", "!")) else text + "."


def _lengths_said(field: Text) -> str | None:
    lengths = [v for v in field.validators if isinstance(v, validate.Length)]
    if isinstance(field, Identifier) or not lengths:
        return None
    low, high = lengths[0].min or 0, lengths[0].max
    if high is None:
        return f"At least {low} characters."
    return f"{low} to {high} characters." if low else f"At most {high} characters."


def _in_request(field: fields.Field[Any]) -> bool:
    parent: Any = field.parent
    while isinstance(parent, fields.Field):
        parent = parent.parent
    return isinstance(parent, Schema) and not isinstance(parent, ResponseSchema)


def text2properties(self: Any, field: fields.Field[Any], ret: dict[str, Any],
                    **kwargs: Any) -> dict[str, Any]:
    """apispec attribute function: a request string's pattern refuses NUL; a trimmed field's
    pattern replaces its raw lengths, which do not apply to what is sent."""
    del self, kwargs
    if not isinstance(field, fields.String) or not _in_request(field):
        return {}
    if isinstance(field, Text) and (pattern := text_pattern(field)) is not None:
        return _trimmed(field, pattern, ret)
    return {} if "pattern" in ret else {"pattern": NO_NUL}


def _trimmed(field: Text, pattern: str, ret: dict[str, Any]) -> dict[str, Any]:
    for key in ("minLength", "maxLength", "pattern"):
        ret.pop(key, None)
    said = [_sentence(ret["description"])] if ret.get("description") else []
    said += [_lengths_said(field) or "", "Surrounding whitespace is removed first."]
    examples = ret.get("examples") or [field.example]
    # Both: JSON Schema's ``examples``, and OpenAPI's older ``example`` that generators read
    # (openapi-generator otherwise tries to build one from the pattern, and fails).
    return {"pattern": pattern, "description": " ".join(part for part in said if part),
            "examples": examples, "example": examples[0]}
