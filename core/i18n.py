"""Languages: Chinese first, English on request (Flask-Babel).

Every text a person reads (problem titles and details, decision explanations, SMS) is written
in English in the source, as the message id, and rendered in the request's language:

- ``_("No farmer with that id")`` / ``gettext``: translated now (inside a request or job);
- ``lazy_gettext(...)``: translated each time it is turned into text (class attributes, such
  as an error's ``title``, defined at import, before any request);
- ``N_("county")``: only marks a string for the catalog; it stays English until a caller
  passes it to ``gettext`` (nouns, werkzeug's status phrases).

Placeholders are named, ``_("Village code %(code)s is already registered", code=code)``, never
f-strings: the catalog holds the text with its placeholders, and a translator may move them.

The language is negotiated from ``Accept-Language`` against :data:`SUPPORTED`; anything else
gets ``NONGDAI_DEFAULT_LOCALE`` (``zh_CN``). Every JSON response says which one it is in
(``Content-Language``, ``Vary: Accept-Language``). :func:`in_locale` renders text in another
language, e.g. an SMS in the farmer's stored language. Codes (problem ``code``, a decision's
``reason_code``) are identifiers and never translated.

Each package keeps its catalogs in ``<package>/translations`` and registers the directory with
:func:`register_catalog`; ``flask i18n`` (``core.i18n_cli``) extracts, updates, compiles and
checks them. See ``docs/i18n.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

import flask_babel
from babel import support
from flask import Flask, Response, current_app, has_app_context, has_request_context, request
from flask_babel.speaklater import LazyString

SUPPORTED = ("zh_CN", "en")
SOURCE_LOCALE = "en"  # the language of the message ids: its catalog needs no translations
CATALOG = Path(__file__).parent / "translations"
_JSON_TYPES = ("application/json", "application/problem+json")

Text: TypeAlias = str | LazyString  # what a caller may pass where a translatable text goes


# --- marking and translating ------------------------------------------------------------------

def gettext(string: str, **variables: Any) -> str:
    """``string`` in the current language, with ``%(name)s`` placeholders filled."""
    return str(flask_babel.gettext(string, **variables))


_ = gettext


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """The singular or plural form for ``num`` (available as ``%(num)d``) in the current
    language (Chinese has one form for every number)."""
    return str(flask_babel.ngettext(singular, plural, num, **variables))


def lazy_gettext(string: str, **variables: Any) -> LazyString:
    """``string``, translated each time it is turned into text."""
    return LazyString(gettext, string, **variables)


def N_(string: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Mark ``string`` for the catalog without translating it (it stays English)."""
    return string


def msgid(text: Text) -> str:
    """The English message id of ``text``: a lazy string's untranslated text, or ``text``."""
    if isinstance(text, LazyString):
        return str(text._args[0])
    return text


# --- choosing the language --------------------------------------------------------------------

def normalize(tag: str | None) -> str | None:
    """The supported locale a language tag stands for, or ``None``.

    ``zh``, ``zh-CN``, ``zh-Hans``, ``zh_CN`` (any Chinese) -> ``zh_CN``: a reader of another
    Chinese variant reads Simplified Chinese more easily than English; ``en``, ``en-US``,
    ``en_GB`` -> ``en``.
    """
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if primary == "zh":
        return "zh_CN"
    if primary == "en":
        return "en"
    return None


def default_locale(app: Flask | None = None) -> str:
    return str((app or current_app).config["NONGDAI_DEFAULT_LOCALE"])


def negotiate(accepted: list[tuple[str, float]], default: str) -> str:
    """The supported locale the client prefers most (highest quality, then header order);
    ``*`` stands for the default; nothing acceptable gives the default."""
    best, best_quality = default, 0.0
    for tag, quality in accepted:
        locale = default if tag == "*" else normalize(tag)
        if locale is not None and quality > best_quality:
            best, best_quality = locale, quality
    return best


def select_locale() -> str:
    """Flask-Babel's locale selector: the request's ``Accept-Language``; the default in a job
    or a CLI command."""
    if not has_request_context():
        return default_locale()
    return negotiate(list(request.accept_languages), default_locale())


def current_locale() -> str:
    """The locale texts are rendered in now (``zh_CN`` or ``en``), e.g. to store as a farmer's
    language at sign-up."""
    if not has_app_context():
        return SOURCE_LOCALE
    return normalize(str(flask_babel.get_locale())) or default_locale()


@contextmanager
def in_locale(locale: str | None) -> Iterator[str]:
    """Render texts in ``locale`` inside the block (an SMS to a farmer in the farmer's stored
    language), inside or outside a request; an unknown or missing locale means the default.

    Needs an application context: that is where the catalogs are.
    """
    if not has_app_context():
        raise RuntimeError("in_locale() needs an application context (the catalogs are the app's)")
    chosen = normalize(locale) or default_locale()
    with flask_babel.force_locale(chosen):
        yield chosen


def content_language(locale: str) -> str:
    """The BCP 47 tag of a locale (``zh_CN`` -> ``zh-CN``)."""
    return locale.replace("_", "-")


def _say_language(response: Response) -> Response:
    """Every JSON answer names its language, and caches keep one copy per language.

    A replayed idempotent answer keeps the ``Content-Language`` it was stored with.
    """
    if response.mimetype in _JSON_TYPES:
        response.headers.setdefault("Content-Language", content_language(current_locale()))
        response.vary.add("Accept-Language")
    return response


# --- catalogs ---------------------------------------------------------------------------------

def register_catalog(app: Flask, directory: str | Path) -> None:
    """Add a package's ``translations`` directory to the app's catalogs.

    Flask-Babel merges the ``messages.mo`` of every directory for a locale; a message id found
    in two catalogs takes the translation of the one registered last.
    """
    babel = flask_babel.get_babel(app)
    path = str(Path(directory).resolve())
    if path not in babel.translation_directories:
        babel.translation_directories.append(path)
        app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(babel.translation_directories)
        babel.instance.domain_instance.cache.clear()  # catalogs loaded before miss the new one


class _Catalogs(flask_babel.Domain):
    """Flask-Babel's message domain, finding a locale's catalogs under the directory named
    as we name the locale (``zh_CN``).

    Babel reads ``zh_CN`` as ``zh_Hans_CN``, for which gettext looks in ``zh_Hans_CN/`` and
    ``zh/`` only. The catalogs of every registered directory are merged, later ones winning.
    """

    def get_translations(self) -> support.NullTranslations:
        if not has_app_context():
            return support.NullTranslations()
        name = current_locale()
        cache = self.get_translations_cache(None)
        if name not in cache:
            merged = support.Translations()
            for directory in self.translation_directories:
                catalog = support.Translations.load(directory, [name], self.domain[0])
                if isinstance(catalog, support.Translations):  # not a NullTranslations
                    merged.merge(catalog)
                    merged.plural = catalog.plural  # merge() keeps only the messages
            cache[name] = merged
        return cache[name]


def catalog_directories(app: Flask) -> list[str]:
    return list(flask_babel.get_babel(app).translation_directories)


def init_app(app: Flask) -> None:
    """Wire Flask-Babel: the default locale from the settings, the request's language from
    ``Accept-Language``, core's catalog; each domain registers its own in its ``init_app``."""
    default = default_locale(app)
    if default not in SUPPORTED:
        raise ValueError(f"NONGDAI_DEFAULT_LOCALE must be one of {', '.join(SUPPORTED)}, "
                         f"not {default!r}")
    app.config["BABEL_DEFAULT_LOCALE"] = default
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(CATALOG)
    babel = flask_babel.Babel(configure_jinja=False)
    babel.init_app(app, locale_selector=select_locale)
    babel.domain_instance = _Catalogs(domain=app.config.get("BABEL_DOMAIN", "messages"))
    app.after_request(_say_language)


__all__ = [
    "N_",
    "SUPPORTED",
    "Text",
    "_",
    "current_locale",
    "gettext",
    "in_locale",
    "init_app",
    "lazy_gettext",
    "msgid",
    "ngettext",
    "register_catalog",
]
