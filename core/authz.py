"""Authorization in one place: a rule on every endpoint, and object scoping by village.

Every ``/api/v1`` view carries an :func:`access` rule. :func:`enforce` (a ``before_request``
hook) authenticates the caller and checks the rule before the view runs; the app refuses to
start when a route has no rule. Object-level scoping lives on the models: a scoped model
defines ``visible_to(principal)`` (a SQL condition) and views load through :func:`get_visible`
or add :func:`visible` to their query, so a coordinator of village A gets 404 for anything in
village B. The same :class:`Principal` (with its ``village_ids``) scopes a sync pull.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, request

from core.db import DbSession
from core.errors import Forbidden, NotFound, Unauthorized
from core.i18n import _, gettext

ACCESS_ATTR = "_nongdai_access"
STAFF_ROLES = frozenset({"reviewer", "approver", "admin"})
KNOWN_ROLES = STAFF_ROLES | {"farmer", "coordinator", "staff"}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """Who is calling: plain data, safe to keep after the session that loaded it ends."""

    kind: str  # "farmer" | "coordinator" | "staff"
    id: int  # internal key of the farmer, coordinator or staff row
    public_id: uuid.UUID
    roles: frozenset[str]
    village_ids: frozenset[int] = field(default_factory=frozenset)
    session_id: int | None = None
    device_id: int | None = None

    @property
    def ref(self) -> str:
        """Stable external reference for audit trails and idempotency scopes."""
        return f"{self.kind}:{self.public_id}"

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    def has_any(self, roles: frozenset[str]) -> bool:
        expanded = self.roles | ({"staff"} if self.is_staff else set())
        return bool(expanded & roles)


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    public: bool = False

    def check(self, principal: Principal | None) -> None:
        if self.public:
            return
        if principal is None:
            raise Unauthorized(_("Sign in and send the access token as 'Authorization: Bearer'"))
        if self.roles and not principal.has_any(self.roles):
            raise Forbidden(_("Your role does not allow this action"))


def access(*roles: str, public: bool = False) -> Callable[[F], F]:
    """Declare who may call a view: ``@access("admin")``, ``@access("coordinator", "staff")``,
    ``@access()`` (anyone signed in) or ``@access(public=True)``."""
    unknown = set(roles) - KNOWN_ROLES
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    rule = Rule(frozenset(roles), public)

    def decorate(view: F) -> F:
        setattr(view, ACCESS_ATTR, rule)
        return view

    return decorate


def rule_for(view: Any, method: str) -> Rule | None:
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        return getattr(handler, ACCESS_ATTR, None)
    return getattr(view, ACCESS_ATTR, None)


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:
        raise Unauthorized()
    return principal


def optional_principal() -> Principal | None:
    return g.get("principal")


# --- object scoping -------------------------------------------------------------------------

class VillageScoped(Protocol):
    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]: ...


M = TypeVar("M")


def village_condition(column: Any, principal: Principal,
                      own: Callable[[Principal], sa.ColumnElement[bool]] | None = None,
                      ) -> sa.ColumnElement[bool]:
    """Shared scoping rule: staff see all; coordinators their station's villages; farmers only
    what ``own`` allows (nothing when ``own`` is not given)."""
    if principal.is_staff:
        return sa.true()
    if principal.kind == "coordinator":
        return column.in_(sorted(principal.village_ids)) if principal.village_ids else sa.false()
    if principal.kind == "farmer" and own is not None:
        return own(principal)
    return sa.false()


def visible(model: Any, principal: Principal | None = None) -> sa.ColumnElement[bool]:
    return model.visible_to(principal or current_principal())


def not_found(model: Any) -> str:
    """"No farmer with that id", in the current language. A model's ``__noun__`` is an English
    message id: ``flask i18n extract`` puts every ``__noun__ = "..."`` in its package's
    catalog."""
    noun = getattr(model, "__noun__", None)
    if noun is None:
        return _("No record with that id")
    return _("No %(noun)s with that id", noun=gettext(noun))


def get_visible(session: DbSession, model: type[M], public_id: uuid.UUID,
                principal: Principal | None = None) -> M:
    """Load one object by public id, or 404 when it does not exist *or* is out of scope."""
    stmt = sa.select(model).where(model.public_id == public_id,  # type: ignore[attr-defined]
                                  visible(model, principal))
    obj = session.scalars(stmt).first()
    if obj is None:
        raise NotFound(not_found(model))
    return obj


# --- enforcement ----------------------------------------------------------------------------

Authenticator = Callable[[str], Principal]


def enforce() -> None:
    """``before_request``: authenticate when a token is sent, then apply the endpoint's rule.

    A public route (sign-in, refresh) skips authentication entirely: mobile HTTP stacks attach
    the last ``Authorization`` header to every call, and an expired token there must not stop
    the very call that replaces it.
    """
    if request.endpoint is None or not request.path.startswith("/api/v1"):
        return
    if request.method == "OPTIONS":
        return
    view = current_app.view_functions[request.endpoint]
    rule = rule_for(view, "GET" if request.method == "HEAD" else request.method)
    if rule is None:  # start-up refuses this; fail closed if a route slips through anyway
        raise Forbidden(_("This route has no access rule"))
    if rule.public:
        return
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _space, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(_("Use 'Authorization: Bearer <access token>'"))
        authenticate: Authenticator = current_app.extensions["nongdai_authenticator"]
        g.principal = authenticate(token.strip())
    rule.check(g.get("principal"))


def unguarded_routes(app: Flask) -> list[str]:
    """Every ``/api/v1`` route and method that has no access rule."""
    missing: list[str] = []
    for url_rule in app.url_map.iter_rules():
        if not url_rule.rule.startswith("/api/v1"):
            continue
        view = app.view_functions[url_rule.endpoint]
        missing.extend(f"{method} {url_rule.rule}"
                       for method in sorted((url_rule.methods or set()) - {"HEAD", "OPTIONS"})
                       if rule_for(view, method) is None)
    return missing


def init_app(app: Flask, authenticator: Authenticator) -> None:
    app.extensions["nongdai_authenticator"] = authenticator
    app.before_request(enforce)


def check_routes(app: Flask) -> None:
    """Refuse to start with an unguarded route (called once every blueprint is registered)."""
    missing = unguarded_routes(app)
    if missing:
        raise RuntimeError("routes without an access rule: " + ", ".join(missing))
