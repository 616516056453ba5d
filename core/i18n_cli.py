"""``flask i18n ...``: each package's message catalogs, with Babel's Python API (no pybabel).

A package keeps its texts in ``<package>/translations``::

    messages.pot                      extracted from the source: never edited by hand
    zh_CN/LC_MESSAGES/messages.po     translations (edited by people)
    zh_CN/LC_MESSAGES/messages.mo     compiled: what the app reads
    en/LC_MESSAGES/messages.po        the source language: empty translations are fine

``extract`` -> ``update`` -> translate the ``.po`` -> ``compile``; ``check`` (CI, and
``tests/core/test_i18n.py``) fails on a text the source has and a catalog lacks, an untranslated
or fuzzy Chinese text, a placeholder the translation misspells, and a ``.mo`` that does not
hold what its ``.po`` says.

Besides the gettext calls (``_``, ``gettext``, ``ngettext``, ``lazy_gettext``, ``N_``), the
extractor takes every model's ``__noun__ = "..."``: ``core.authz`` says "No %(noun)s with that
id" with the noun translated.
"""

from __future__ import annotations

import ast
import importlib.util
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract, extract_python
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po
from flask.cli import AppGroup

from core.i18n import SOURCE_LOCALE, SUPPORTED

PACKAGES = ("core", "lending", "sync", "agents")
DOMAIN = "messages"
KEYWORDS = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "lazy_ngettext": (1, 2)}
COMMENT_TAGS = ("TRANSLATORS:",)
NOUN_COMMENT = "A record's noun, as in 'No %(noun)s with that id'"
_SKIPPED_DIRS = frozenset({"translations", "__pycache__"})
_WIDTH = 100
_POT_DATE = b'"POT-Creation-Date:'

i18n_cli = AppGroup("i18n", help="Message catalogs: extract, update, compile, check.")

Key = tuple[str, str | None]


# --- where things are -------------------------------------------------------------------------

def package_dir(package: str) -> Path | None:
    """The directory of an importable package (without importing it), or ``None``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def translations_dir(package: str) -> Path:
    found = package_dir(package)
    if found is None:
        raise click.ClickException(f"no package named {package!r}")
    return found / "translations"


def po_path(package: str, locale: str) -> Path:
    return translations_dir(package) / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalog_packages(packages: Iterable[str] = PACKAGES) -> list[str]:
    """The packages that have a catalog (a ``.po`` for some locale)."""
    return [name for name in packages if package_dir(name) is not None
            and any(po_path(name, locale).exists() for locale in SUPPORTED)]


# --- extracting -------------------------------------------------------------------------------

def extract_with_nouns(fileobj: Any, keywords: Any, comment_tags: Any,
                       options: Any) -> Iterator[Any]:
    """Babel's Python extractor, plus each ``__noun__ = "..."`` assignment (as ``N_``)."""
    yield from extract_python(fileobj, keywords, comment_tags, options)
    fileobj.seek(0)
    for node in ast.walk(ast.parse(fileobj.read())):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and any(isinstance(t, ast.Name) and t.id == "__noun__" for t in node.targets)):
            yield node.lineno, "N_", node.value.value, [NOUN_COMMENT]


def _sources(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.py")
                  if not _SKIPPED_DIRS.intersection(path.relative_to(root).parts))


def extract_catalog(package: str) -> Catalog:
    """The texts of ``package``'s source, as a template catalog (in memory)."""
    root = package_dir(package)
    if root is None:
        raise click.ClickException(f"no package named {package!r}")
    catalog = Catalog(project="Nongdai", domain=DOMAIN, header_comment=(
        f"# Texts of the package {package!r}, extracted by `flask i18n extract`.\n"
        "# Do not edit: translate in <locale>/LC_MESSAGES/messages.po.\n#"))
    for path in _sources(root):
        where = f"{package}/{path.relative_to(root).as_posix()}"
        with path.open("rb") as source:
            for lineno, message, comments, context in extract(
                    extract_with_nouns, source, KEYWORDS, COMMENT_TAGS, strip_comment_tags=True):
                catalog.add(message, None, [(where, lineno)], auto_comments=comments,
                            context=context)
    return catalog


def _render_po(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, width=_WIDTH, sort_by_file=True, include_lineno=False,
             ignore_obsolete=True)
    return out.getvalue()


def _without_date(content: bytes) -> bytes:
    return b"\n".join(line for line in content.splitlines() if not line.startswith(_POT_DATE))


def write_template(package: str) -> Path | None:
    """Write ``messages.pot`` when the texts changed (not for a new creation date alone);
    ``None`` when the package has no texts."""
    catalog = extract_catalog(package)
    if not len(catalog):
        return None
    target = translations_dir(package) / f"{DOMAIN}.pot"
    content = _render_po(catalog)
    if not target.exists() or _without_date(target.read_bytes()) != _without_date(content):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return target


# --- updating and compiling -------------------------------------------------------------------

def _read_po(path: Path, locale: str) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale, domain=DOMAIN)


def _read_template(path: Path) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, domain=DOMAIN)


def _new_po(package: str, locale: str) -> Catalog:
    """A locale's first, empty catalog (:func:`update_locale` fills in the template's texts)."""
    note = ("the source language: leave the translations empty"
            if locale == SOURCE_LOCALE else "translate every text")
    return Catalog(locale=Locale.parse(locale), domain=DOMAIN, project="Nongdai", fuzzy=False,
                   header_comment=(f"# {locale} texts of the package {package!r}: {note}.\n"
                                   "# Refresh with `flask i18n update`, then `compile`.\n#"))


def update_locale(package: str, locale: str) -> Path:
    """Merge the template into the locale's ``.po``, keeping its translations. A changed text
    becomes a fuzzy guess for the translator (not in the source language, whose translations
    stay empty); a text gone from the source is dropped."""
    template_path = translations_dir(package) / f"{DOMAIN}.pot"
    if not template_path.exists():
        raise click.ClickException(f"{template_path} is missing: run `flask i18n extract` first")
    target = po_path(package, locale)
    catalog = _read_po(target, locale) if target.exists() else _new_po(package, locale)
    catalog.update(_read_template(template_path), no_fuzzy_matching=locale == SOURCE_LOCALE)
    content = _render_po(catalog)
    if not target.exists() or target.read_bytes() != content:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return target


def _translated(message: Message) -> bool:
    forms = message.string if isinstance(message.string, tuple | list) else (message.string,)
    return bool(forms) and all(forms)


def compiled(catalog: Catalog) -> Catalog:
    """What the ``.mo`` holds: the header and every complete, non-fuzzy translation (a plural
    with an empty form is left out, so gettext falls back to the English text)."""
    kept = Catalog(locale=catalog.locale, domain=DOMAIN, fuzzy=False)
    kept.mime_headers = catalog.mime_headers
    for message in catalog:
        if message.id and _translated(message) and not message.fuzzy:
            kept[message.id] = message
    return kept


def compile_locale(package: str, locale: str) -> Path | None:
    source = po_path(package, locale)
    if not source.exists():
        return None
    target = source.with_suffix(".mo")
    out = io.BytesIO()
    write_mo(out, compiled(_read_po(source, locale)))
    if not target.exists() or target.read_bytes() != out.getvalue():
        target.write_bytes(out.getvalue())
    return target


# --- checking ---------------------------------------------------------------------------------

def _key(message: Message) -> Key:
    msgid = message.id[0] if isinstance(message.id, tuple | list) else message.id
    return str(msgid), message.context


def _entries(catalog: Catalog) -> dict[Key, Any]:
    return {_key(m): tuple(m.string) if isinstance(m.string, list) else m.string
            for m in catalog if m.id}


def _mo_entries(path: Path) -> dict[Key, Any]:
    with path.open("rb") as source:
        return _entries(read_mo(source))


def check_locale(package: str, locale: str, source: Catalog) -> list[str]:
    """What is wrong with one locale's catalog of ``package`` (empty when nothing)."""
    path = po_path(package, locale)
    if not path.exists():
        return [f"{path}: missing (run `flask i18n update`)"]
    catalog = _read_po(path, locale)
    problems = [f"{path}: the source has {msgid!r}, the catalog does not (run extract, update)"
                for msgid, _context in sorted(set(_entries(source)) - set(_entries(catalog)),
                                              key=str)]
    if locale != SOURCE_LOCALE:
        problems += [f"{path}: {'fuzzy' if m.fuzzy else 'untranslated'}: {_key(m)[0]!r}"
                     for m in catalog if m.id and (m.fuzzy or not _translated(m))]
    problems += [f"{path}: {_key(m)[0]!r}: {error}" for m, errors in catalog.check()
                 for error in errors]
    mo = path.with_suffix(".mo")
    if not mo.exists() or _mo_entries(mo) != _entries(compiled(catalog)):
        problems.append(f"{mo}: missing or stale against its .po (run `flask i18n compile`)")
    return problems


def check_package(package: str) -> list[str]:
    """Every problem of ``package``'s catalogs, against its current source."""
    source = extract_catalog(package)
    return [problem for locale in SUPPORTED for problem in check_locale(package, locale, source)]


# --- the commands -----------------------------------------------------------------------------

_PACKAGE_OPTION = click.option(
    "-p", "--package", "packages", multiple=True, metavar="NAME",
    help=f"Only this package (repeatable); default: {', '.join(PACKAGES)}.")


def _chosen(packages: tuple[str, ...], *, with_catalog: bool) -> list[str]:
    names = list(packages) or [name for name in PACKAGES if package_dir(name) is not None]
    return catalog_packages(names) if with_catalog else names


@i18n_cli.command("extract")
@_PACKAGE_OPTION
def extract_command(packages: tuple[str, ...]) -> None:
    """Write each package's translations/messages.pot from its source."""
    for package in _chosen(packages, with_catalog=False):
        written = write_template(package)
        click.echo(f"{package}: {written or 'no texts'}")


@i18n_cli.command("update")
@_PACKAGE_OPTION
def update_command(packages: tuple[str, ...]) -> None:
    """Merge messages.pot into each locale's .po (created when missing), keeping translations."""
    for package in _chosen(packages, with_catalog=False):
        if not (translations_dir(package) / f"{DOMAIN}.pot").exists() and not packages:
            continue  # a package without texts
        for locale in SUPPORTED:
            click.echo(f"{package}: {update_locale(package, locale)}")


@i18n_cli.command("compile")
@_PACKAGE_OPTION
def compile_command(packages: tuple[str, ...]) -> None:
    """Compile each .po to the .mo the app reads."""
    for package in _chosen(packages, with_catalog=True):
        for locale in SUPPORTED:
            click.echo(f"{package}: {compile_locale(package, locale) or f'no {locale} catalog'}")


@i18n_cli.command("check")
@_PACKAGE_OPTION
def check_command(packages: tuple[str, ...]) -> None:
    """Fail on a text missing from a catalog, an untranslated or fuzzy Chinese text, a
    misspelt placeholder, or a stale .mo."""
    problems = [problem for package in _chosen(packages, with_catalog=True)
                for problem in check_package(package)]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} catalog problem(s)")
    click.echo("catalogs complete")
