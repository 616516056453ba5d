"""The life of an application, in one place.

::

    draft ──submit──▶ submitted ──▶ approved | declined | under_review | awaiting_field_check
    awaiting_field_check ──check arrives──▶ submitted (decided again at once)
    under_review ──▶ approved | declined | submitted (decided again: registry back, new info)
    draft, submitted, awaiting_field_check, under_review, approved ──▶ withdrawn | expired

``declined``, ``withdrawn`` and ``expired`` are final. :func:`move` is the only code that changes
``Application.state``: it checks the pair against :data:`TRANSITIONS` and writes the change as
one conditional UPDATE (``WHERE state = <from>``), so two people acting on one case at once
cannot both move it: the second gets 409 ``illegal-transition``.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from core import audit
from core.db import DbSession, rowcount, table, utcnow
from core.errors import Conflict
from core.i18n import _, lazy_gettext
from lending.applications.models import Application, FieldAssignment
from sync.feed import changes as feed

DRAFT: Final = "draft"
SUBMITTED: Final = "submitted"
AWAITING_FIELD_CHECK: Final = "awaiting_field_check"
UNDER_REVIEW: Final = "under_review"
APPROVED: Final = "approved"
DECLINED: Final = "declined"
WITHDRAWN: Final = "withdrawn"
EXPIRED: Final = "expired"

STATES: Final = (DRAFT, SUBMITTED, AWAITING_FIELD_CHECK, UNDER_REVIEW, APPROVED, DECLINED,
                 WITHDRAWN, EXPIRED)
FINAL: Final = frozenset({DECLINED, WITHDRAWN, EXPIRED})
OPEN: Final = frozenset(STATES) - FINAL - {APPROVED}

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    DRAFT: frozenset({SUBMITTED, WITHDRAWN, EXPIRED}),
    SUBMITTED: frozenset({APPROVED, DECLINED, UNDER_REVIEW, AWAITING_FIELD_CHECK, WITHDRAWN}),
    AWAITING_FIELD_CHECK: frozenset({SUBMITTED, WITHDRAWN, EXPIRED}),
    UNDER_REVIEW: frozenset({APPROVED, DECLINED, SUBMITTED, WITHDRAWN, EXPIRED}),
    APPROVED: frozenset({WITHDRAWN, EXPIRED}),
    DECLINED: frozenset(),
    WITHDRAWN: frozenset(),
    EXPIRED: frozenset(),
}


class IllegalTransition(Conflict):
    code = "illegal-transition"
    title = lazy_gettext("The application cannot change to that state now")


def allowed(source: str, target: str) -> bool:
    return target in TRANSITIONS.get(source, frozenset())


def move(session: DbSession, application: Application, target: str, *, actor: str,
         reason: str | None = None, values: dict[str, Any] | None = None,
         unassigned: bool = False) -> Application:
    """Change ``application`` to ``target`` or raise :class:`IllegalTransition` (409).

    The UPDATE names the state the caller saw, so a concurrent move of the same case makes
    this one fail instead of silently overwriting it. ``values`` are other columns settled by
    the same change (``decided_at``, ``approved_amount_fen``...), written by the same UPDATE.
    ``unassigned``: the caller knows the application has no open assignment (it was inserted
    by this transaction, which opened none yet), so devices need not hear of the change.
    Audited as ``application.<target>``.
    """
    source = application.state
    if not allowed(source, target):
        raise IllegalTransition(_refusal(source, target))
    changes = {"state": target, "state_changed_at": utcnow(), **(values or {})}
    moved = session.connection().execute(_moving(tuple(sorted(changes))), {
        "b_id": application.id, "b_source": source,
        **{f"b_{name}": value for name, value in changes.items()}})
    if rowcount(moved) != 1:
        session.refresh(application)
        raise IllegalTransition(_refusal(application.state, target))
    for name, value in changes.items():  # what the UPDATE wrote, without reading it back
        set_committed_value(application, name, value)
    if not unassigned:
        _assignments_changed(session, application)
    audit.record(session, f"application.{target}", application,
                 summary={"from": source, "to": target, "reason": reason}, actor=actor)
    return application


def _assignments_changed(session: DbSession, application: Application) -> None:
    """Devices show an open assignment with its application's state: a Core UPDATE escapes
    the ORM listeners of the device feed, so the change is recorded here (one indexed read)."""
    for public_id, village_id in session.connection().execute(_OPEN_ASSIGNMENTS,
                                                 {"application_id": application.id}):
        feed.record(session, "assignment", public_id, village_id)


def _refusal(source: str, target: str) -> str:
    return _("An application in state %(source)s cannot become %(target)s",
             source=source, target=target)


_table = table(Application)


@functools.cache
def _moving(names: tuple[str, ...]) -> sa.Update:
    """``UPDATE loan_applications SET <names> WHERE id = :b_id AND state = :b_source``, built
    once per set of columns (a request binds its values; it does not build the statement)."""
    return (sa.update(_table)
            .where(_table.c.id == sa.bindparam("b_id"),
                   _table.c.state == sa.bindparam("b_source"))
            .values({name: sa.bindparam(f"b_{name}") for name in names}))


_OPEN_ASSIGNMENTS = sa.select(FieldAssignment.public_id, FieldAssignment.village_id).where(
    FieldAssignment.application_id == sa.bindparam("application_id"),
    FieldAssignment.status == "open")
