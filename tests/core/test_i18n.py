"""Chinese first, English on request (core.i18n, core.i18n_cli): the language a request gets,
the problem documents in it, texts rendered in another language, catalogs merged from several
directories, and the catalog check CI relies on."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from core import i18n, i18n_cli
from core.errors import HTTP_PHRASES, NongdaiError
from core.i18n import _, in_locale, lazy_gettext, negotiate
from tests import factories as f

API = "/api/v1"
NOWHERE = f"{API}/nowhere"


# --- which language ----------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "expected"), [
    ("", "zh_CN"),
    ("en", "en"),
    ("en-US,en;q=0.9", "en"),
    ("EN-gb", "en"),
    ("zh", "zh_CN"),
    ("zh-CN", "zh_CN"),
    ("zh-Hans", "zh_CN"),
    ("zh-Hans-CN, en;q=0.8", "zh_CN"),
    ("zh_CN", "zh_CN"),
    ("fr", "zh_CN"),                  # unsupported: the default
    ("fr, en;q=0.5", "en"),           # the first supported one the client accepts
    ("en;q=0.3, zh;q=0.6", "zh_CN"),  # quality, not order, decides
    ("de, *;q=0.5, en;q=0.4", "zh_CN"),  # anything else (the default) before English
    ("en;q=0", "zh_CN"),              # q=0 means "not this one"
    ("garbage;;q=x", "zh_CN"),
])
def test_accept_language_is_negotiated(app: Flask, header: str, expected: str) -> None:
    with app.test_request_context("/", headers={"Accept-Language": header} if header else {}):
        assert i18n.current_locale() == expected


def test_negotiate_falls_back_to_the_given_default() -> None:
    assert negotiate([("fr", 1.0)], "en") == "en"
    assert negotiate([], "zh_CN") == "zh_CN"


def test_the_default_locale_is_a_setting(app: Flask) -> None:
    app.config["NONGDAI_DEFAULT_LOCALE"] = "en"
    with app.test_request_context("/", headers={"Accept-Language": "fr"}):
        assert i18n.current_locale() == "en"


def test_an_unsupported_default_locale_is_refused_at_start() -> None:
    app = Flask(__name__)
    app.config["NONGDAI_DEFAULT_LOCALE"] = "fr"
    with pytest.raises(ValueError, match="NONGDAI_DEFAULT_LOCALE"):
        i18n.init_app(app)


# --- problems in the request's language ------------------------------------------------------

def test_problems_are_chinese_by_default(client: Any) -> None:
    response = client.get(NOWHERE)

    body = response.get_json()
    assert (body["code"], body["title"]) == ("not-found", "未找到")
    assert body["detail"] == "此地址下没有内容，请检查网址拼写"  # noqa: RUF001
    assert response.headers["Content-Language"] == "zh-CN"
    assert "Accept-Language" in response.headers["Vary"]


def test_english_on_request(client: Any) -> None:
    response = client.get(NOWHERE, headers={"Accept-Language": "en-US,en;q=0.9"})

    body = response.get_json()
    assert (body["code"], body["title"]) == ("not-found", "Not found")
    assert body["detail"] == "Nothing was found at this address; check the spelling of the URL"
    assert response.headers["Content-Language"] == "en"


def test_an_unsupported_language_gets_chinese(client: Any) -> None:
    response = client.get(NOWHERE, headers={"Accept-Language": "fr-FR, de;q=0.8"})

    assert response.get_json()["title"] == "未找到"
    assert response.headers["Content-Language"] == "zh-CN"


@pytest.mark.parametrize(("language", "detail"), [
    ("zh-CN", "未找到该农户"), ("en", "No farmer with that id")])
def test_a_domain_error_detail_names_the_record_in_the_language(
        client: Any, session: Any, language: str, detail: str) -> None:
    admin = f.auth_headers(session, f.staff(session))

    response = client.get(f"{API}/farmers/{uuid.uuid4()}",
                          headers={**admin, "Accept-Language": language})

    body = response.get_json()
    assert (response.status_code, body["code"], body["detail"]) == (404, "not-found", detail)


@pytest.mark.parametrize(("language", "title"), [
    ("zh-CN", "不允许的请求方法"), ("en", "Method Not Allowed")])
def test_werkzeug_titles_are_translated(client: Any, session: Any, language: str,
                                        title: str) -> None:
    admin = f.auth_headers(session, f.staff(session))

    response = client.delete(f"{API}/counties", headers={**admin, "Accept-Language": language})

    assert (response.get_json()["code"], response.get_json()["title"]) == (
        "method-not-allowed", title)


def test_a_werkzeug_error_raised_with_our_detail_keeps_it(client: Any, session: Any) -> None:
    admin = f.auth_headers(session, f.staff(session))

    response = client.post(f"{API}/counties", data=b"code=1", content_type="text/plain",
                           headers=admin)

    body = response.get_json()
    assert (body["code"], body["title"]) == ("unsupported-media-type", "不支持的媒体类型")
    assert body["detail"] == "请以 application/json 格式发送请求体"


def _error_classes(base: type) -> list[type]:
    return [cls for sub in base.__subclasses__() for cls in (sub, *_error_classes(sub))]


def test_every_title_of_a_package_with_a_catalog_is_translated(app: Flask) -> None:
    """A title written as a plain string is never extracted: write it with lazy_gettext."""
    with_catalog = set(i18n_cli.catalog_packages())
    classes = [cls for cls in (NongdaiError, *_error_classes(NongdaiError))
               if cls.__module__.split(".")[0] in with_catalog]

    with app.test_request_context("/"):
        untranslated = {f"{cls.__module__}.{cls.__name__}": i18n.msgid(cls.title)
                        for cls in classes if str(cls.title) == i18n.msgid(cls.title)}

    assert untranslated == {}
    assert len(classes) > 20


def test_werkzeug_phrases_are_all_marked_for_the_catalog() -> None:
    assert {s: p for s, p in HTTP_STATUS_CODES.items() if s >= 400} == HTTP_PHRASES


def test_successful_json_answers_say_their_language_too(client: Any) -> None:
    response = client.get("/healthz", headers={"Accept-Language": "en"})

    assert response.headers["Content-Language"] == "en"
    assert "Accept-Language" in response.headers["Vary"]


def test_a_replayed_answer_keeps_the_language_it_was_given_in(client: Any, session: Any) -> None:
    admin = f.auth_headers(session, f.staff(session))
    headers = {**admin, "Idempotency-Key": str(uuid.uuid4())}
    body = {"code": "330521", "name": "德清县"}

    first = client.post(f"{API}/counties", json=body, headers={**headers, "Accept-Language": "en"})
    replay = client.post(f"{API}/counties", json=body, headers=headers)

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Content-Language"] == "en"


# --- rendering in another language -----------------------------------------------------------

def test_in_locale_renders_outside_a_request(app: Flask) -> None:
    with app.app_context():
        assert _("Not found") == "未找到"  # a job or a CLI command: the default language
        with in_locale("en") as chosen:
            assert (chosen, _("Not found")) == ("en", "Not found")
        with in_locale(None) as chosen:  # a farmer without a stored language
            assert (chosen, _("Not found")) == ("zh_CN", "未找到")
        with in_locale("zh-Hans") as chosen:
            assert (chosen, _("Not found")) == ("zh_CN", "未找到")


def test_in_locale_overrides_the_request_and_restores_it(app: Flask) -> None:
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        with in_locale("zh_CN"):
            assert _("Not found") == "未找到"
            assert i18n.current_locale() == "zh_CN"
        assert _("Not found") == "Not found"


def test_in_locale_needs_the_app() -> None:
    with pytest.raises(RuntimeError, match="application context"), in_locale("en"):
        pass


def test_a_lazy_text_is_translated_when_used(app: Flask) -> None:
    title = lazy_gettext("Not found")
    with app.test_request_context("/", headers={"Accept-Language": "zh"}):
        assert str(title) == "未找到"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert str(title) == "Not found"
    assert i18n.msgid(title) == "Not found"


# --- catalogs of several packages ------------------------------------------------------------

def _catalog(directory: Path, locale: str, messages: dict[str, str]) -> Path:
    """A compiled catalog holding ``messages`` (as a domain's translations directory holds)."""
    catalog = Catalog(locale=locale)
    for msgid, translation in messages.items():
        catalog.add(msgid, translation)
    folder = directory / locale / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "messages.mo").open("wb") as out:
        write_mo(out, catalog)
    return directory


def test_registered_catalogs_are_merged(app: Flask, tmp_path: Path) -> None:
    domain = _catalog(tmp_path / "translations", "zh_CN", {
        "Only the domain has this text": "只有该领域有这段文字",
        "Conflict": "领域的译文"})  # registered last, it wins over core's

    i18n.register_catalog(app, domain)

    assert i18n.catalog_directories(app)[0] == str(i18n.CATALOG)
    assert i18n.catalog_directories(app)[-1] == str(domain.resolve())
    with app.test_request_context("/"):
        assert _("Only the domain has this text") == "只有该领域有这段文字"
        assert _("Not found") == "未找到"  # core's catalog still answers
        assert _("Conflict") == "领域的译文"


def test_registering_a_catalog_after_use_clears_what_was_loaded(app: Flask,
                                                                 tmp_path: Path) -> None:
    with app.test_request_context("/"):
        assert _("A text only a later catalog has") == "A text only a later catalog has"

    before = len(i18n.catalog_directories(app))
    i18n.register_catalog(app, _catalog(tmp_path, "zh_CN", {
        "A text only a later catalog has": "后注册的目录中的文字"}))
    i18n.register_catalog(app, tmp_path)  # twice is once

    with app.test_request_context("/"):
        assert _("A text only a later catalog has") == "后注册的目录中的文字"
    assert len(i18n.catalog_directories(app)) == before + 1


# --- the catalog check (CI fails on an untranslated text or a stale .mo) ---------------------

@pytest.mark.parametrize("package", i18n_cli.catalog_packages())
def test_catalogs_are_complete_and_compiled(package: str) -> None:
    assert i18n_cli.check_package(package) == []


def test_core_has_a_catalog() -> None:
    assert "core" in i18n_cli.catalog_packages()


def test_nouns_and_gettext_calls_are_extracted() -> None:
    catalog = i18n_cli.extract_catalog("core")

    assert catalog["farmer"] is not None  # core/people/models.py: __noun__ = "farmer"
    assert i18n_cli.NOUN_COMMENT in catalog["farmer"].auto_comments
    assert catalog["Not found"] is not None  # lazy_gettext
    assert catalog["HTTP error"] is not None  # N_
    assert catalog["%(num)d try left"].pluralizable  # ngettext


PROBE = "nongdai_i18n_probe"


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A package of its own with one text, importable for the CLI."""
    package = tmp_path / PROBE
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        from core.i18n import _, ngettext

        def hello(name):
            return _("Hello %(name)s", name=name)

        def apples(n):
            return ngettext("%(num)d apple", "%(num)d apples", n)
    '''), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    sys.modules.pop(PROBE, None)


def _translate(package: Path, translations: dict[str, Any]) -> None:
    path = package / "translations" / "zh_CN" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale="zh_CN")
    for message in catalog:
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        if key in translations:
            message.string = translations[key]
    with path.open("wb") as out:
        write_po(out, catalog)


def _i18n(runner: Any, *args: str) -> Any:
    return runner.invoke(args=["i18n", *args, "-p", PROBE])


def test_the_cli_round_trip_and_what_check_refuses(runner: Any, probe: Path) -> None:
    assert _i18n(runner, "extract").exit_code == 0
    assert _i18n(runner, "update").exit_code == 0
    assert (probe / "translations" / "messages.pot").exists()
    assert (probe / "translations" / "en" / "LC_MESSAGES" / "messages.po").exists()

    refused = _i18n(runner, "check")  # nothing translated, nothing compiled
    assert refused.exit_code != 0
    assert "untranslated: 'Hello %(name)s'" in refused.output
    assert "stale" in refused.output

    _translate(probe, {"Hello %(name)s": "你好 %(name)s", "%(num)d apple": ("%(num)d 个苹果",)})
    assert _i18n(runner, "compile").exit_code == 0
    passed = _i18n(runner, "check")
    assert passed.exit_code == 0, passed.output

    _translate(probe, {"Hello %(name)s": "您好 %(name)s"})  # edited, not compiled
    assert "stale" in _i18n(runner, "check").output
    assert _i18n(runner, "compile").exit_code == 0

    _translate(probe, {"Hello %(name)s": "你好 %(nmae)s"})  # a misspelt placeholder
    _i18n(runner, "compile")
    assert "placeholder" in _i18n(runner, "check").output
    _translate(probe, {"Hello %(name)s": "你好 %(name)s"})
    _i18n(runner, "compile")

    (probe / "more.py").write_text('from core.i18n import _\n\nBYE = _("Goodbye")\n',
                                   encoding="utf-8")
    missing = _i18n(runner, "check")  # the source has a text the catalogs lack
    assert "the source has 'Goodbye'" in missing.output
    assert missing.exit_code != 0


def test_update_keeps_translations_and_marks_changed_texts_fuzzy(runner: Any,
                                                                 probe: Path) -> None:
    _i18n(runner, "extract")
    _i18n(runner, "update")
    _translate(probe, {"Hello %(name)s": "你好 %(name)s", "%(num)d apple": ("%(num)d 个苹果",)})
    source = probe / "__init__.py"
    source.write_text(source.read_text(encoding="utf-8").replace("Hello %(name)s",
                                                                 "Hello, %(name)s"))

    _i18n(runner, "extract")
    _i18n(runner, "update")

    with (probe / "translations/zh_CN/LC_MESSAGES/messages.po").open("rb") as po:
        catalog = read_po(po, locale="zh_CN")
    assert catalog[("%(num)d apple")].string == ("%(num)d 个苹果",)
    assert catalog["Hello, %(name)s"].fuzzy  # a guess from the old text, for a person to check
    assert catalog["Hello %(name)s"] is None
    assert "fuzzy: 'Hello, %(name)s'" in _i18n(runner, "check").output


def test_compiled_english_falls_back_to_the_source_text(app: Flask, runner: Any,
                                                         probe: Path) -> None:
    for step in ("extract", "update", "compile"):
        _i18n(runner, step)
    i18n.register_catalog(app, probe / "translations")
    module = __import__(PROBE)

    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert module.apples(1) == "1 apple"  # the empty plural forms are not compiled
        assert module.apples(3) == "3 apples"
