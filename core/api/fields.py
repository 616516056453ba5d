"""Field types every domain's schemas share.

Text is trimmed one way everywhere: :class:`Text` removes what ``str.strip()`` removes, then
validates, so an error speaks of the value that would be stored. Identifiers (phone numbers,
ID numbers, one-time codes, usernames, division codes) are :class:`Identifier` fields: trimmed
the same way, then matched whole against their shape. The OpenAPI document states exactly what
is accepted, surrounding whitespace included (see :mod:`core.api.openapi`).

References to related rows travel as their public ids (a UUID in, ``related.public_id`` out);
internal keys never leave the server.

Messages we write are English message ids (``N_``), translated when a value fails
(``core.i18n``); marshmallow's own messages ("Missing data for required field.") stay English.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flask import current_app
from marshmallow import ValidationError, fields, validate

from core.i18n import N_, gettext

# Exactly the characters str.isspace() accepts (and so str.strip() removes), as a regular
# expression character class that Python, ECMAScript and Rust engines read the same way.
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _validators(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class Text(fields.String):
    """A string with surrounding whitespace removed before it is validated.

    ``EXAMPLE`` is the value the OpenAPI document shows (generators would otherwise try to
    build one from the pattern); ``metadata={"examples": [...]}`` overrides it.
    """

    EXAMPLE: ClassVar[str] = "示例"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.example = self.EXAMPLE

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return self.normalise(super()._deserialize(value, attr, data, **kwargs).strip())

    def normalise(self, value: str) -> str:
        """Hook for subclasses: the trimmed value as it will be validated and stored."""
        return value


class Shape(validate.Regexp):
    """A regular expression matched whole, whose message (an English message id with
    ``%(name)s`` placeholders filled from ``variables``) is translated when a value fails."""

    def __init__(self, shape: str, message: str, **variables: Any) -> None:
        super().__init__(rf"(?:{shape})\Z", error=message)
        self.variables = variables

    def _format_error(self, value: str | bytes) -> str:
        del value  # the message never echoes the value
        return gettext(self.error, **self.variables)


class Identifier(Text):
    """Trimmed text that must match a shape whole (a regular expression without anchors).

    ``INPUT_SHAPE`` is what a client may send before normalisation (a lower-case ``x`` in an ID
    number, say); the OpenAPI document states it. ``ERROR`` is an English message id, marked
    with ``N_``.
    """

    SHAPE: ClassVar[str] = ".+"
    INPUT_SHAPE: ClassVar[str | None] = None
    ERROR: ClassVar[str] = N_("Not a valid value.")

    def __init__(self, *, shape: str | None = None, error: str | None = None,
                 error_variables: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.shape = shape or self.SHAPE
        self.input_shape = self.INPUT_SHAPE or self.shape
        rule = Shape(self.shape, error or self.ERROR, **(error_variables or {}))
        super().__init__(validate=[rule, *_validators(kwargs.pop("validate", None))], **kwargs)


class Phone(Identifier):
    """A mainland mobile number: 11 ASCII digits starting with 1."""

    SHAPE = "1[0-9]{10}"
    ERROR = N_("Must be 11 digits starting with 1.")
    EXAMPLE = "13712345678"


class IdNumber(Identifier):
    """A resident ID number's shape (17 digits, then a digit or X); ``x`` is upper-cased.

    The check digit and birth date are the people domain's rule (``core.people.idnumber``).
    """

    SHAPE = "[0-9]{17}[0-9X]"
    INPUT_SHAPE = "[0-9]{17}[0-9Xx]"
    ERROR = N_("Must be 17 digits followed by a digit or X.")
    EXAMPLE = "33052119850309008X"

    def normalise(self, value: str) -> str:
        return value.upper()


class OtpCode(Identifier):
    """A one-time code: 6 ASCII digits."""

    SHAPE = "[0-9]{6}"
    ERROR = N_("The code is 6 digits.")
    EXAMPLE = "204817"


class Username(Identifier):
    """A coordinator's or staff member's username, stored lower-case."""

    SHAPE = "[a-z][a-z0-9_.-]{2,59}"
    ERROR = N_("3 to 60 lowercase letters, digits, '.', '_' or '-', starting with a letter.")
    EXAMPLE = "wang.wu"


class Digits(Identifier):
    """Exactly ``length`` ASCII digits (division codes)."""

    CODE = "330521100201"  # a village of 德清县: its county and township codes are prefixes

    def __init__(self, length: int, **kwargs: Any) -> None:
        super().__init__(shape=f"[0-9]{{{length}}}",
                         error=N_("Must be exactly %(length)d digits."),
                         error_variables={"length": length}, **kwargs)
        self.example = self.CODE[:length].ljust(length, "0")


def name_field(**kwargs: Any) -> Text:
    """A display name: 1 to 100 characters after trimming."""
    return Text(validate=validate.Length(min=1, max=100), **kwargs)


def digits_field(length: int, **kwargs: Any) -> Digits:
    return Digits(length, **kwargs)


class SettingRange(validate.Validator):
    """``min`` to the app setting ``setting``, read when used, so tests and deployments that
    change the setting change the rule (and the OpenAPI document, built in an app context)."""

    def __init__(self, setting: str, low: int = 1) -> None:
        self.setting = setting
        self.min = low  # ``min`` and ``max``, as validate.Range: apispec documents them

    @property
    def max(self) -> int:
        return int(current_app.config[self.setting])

    def __call__(self, value: Any) -> Any:
        if not self.min <= value <= self.max:
            raise ValidationError(gettext("Must be between %(min)d and %(max)d.",
                                          min=self.min, max=self.max))
        return value


class Ref(fields.UUID):
    """A related row's public id: loads a UUID, dumps ``obj.<relationship>.public_id``."""

    def __init__(self, relationship: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.relationship = relationship

    def get_value(self, obj: Any, *_args: Any, **_kwargs: Any) -> Any:
        related = getattr(obj, self.relationship, None)
        return None if related is None else related.public_id


class RefList(fields.List):
    """Public ids of related rows: loads a list of UUIDs, dumps ``obj.<relationship>``'s ids."""

    def __init__(self, relationship: str, **kwargs: Any) -> None:
        super().__init__(fields.UUID(), **kwargs)
        self.relationship = relationship

    def get_value(self, obj: Any, *_args: Any, **_kwargs: Any) -> Any:
        return [row.public_id for row in getattr(obj, self.relationship)]


def public_id_field(**kwargs: Any) -> fields.UUID:
    """A row's public id, shown as ``id``."""
    return fields.UUID(attribute="public_id", **kwargs)
