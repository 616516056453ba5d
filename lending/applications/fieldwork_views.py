"""HTTP API of field work: coordinators' lists of visits, and checks recorded online.

Checks recorded offline arrive through the sync push, which calls the same service
(:func:`lending.applications.fieldwork.record_field_check`).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import g

from core.api import Blueprint, raises
from core.authz import access, current_principal, get_visible
from core.db import db
from core.idempotency import idempotent
from lending.applications import fieldwork
from lending.applications import fieldwork_schemas as schemas
from lending.applications.models import Application

blp = Blueprint("fieldwork", __name__, description="Field checks: coordinators' visits")


@blp.route("/assignments", methods=["GET"])
@access("coordinator", "staff")
@blp.arguments(schemas.FieldAssignmentListArgs, location="query")
@blp.response(200, schemas.FieldAssignmentPage)
def list_assignments(args: dict[str, Any]) -> dict[str, Any]:
    """Visits to make: a coordinator's villages' assignments, staff all; oldest first.

    ``status`` defaults to ``open``.
    """
    return fieldwork.assignments_page(db.session, current_principal(), args)


@blp.route("/applications/<uuid:application_id>/field-checks", methods=["POST"])
@access("coordinator")
@raises(fieldwork.FieldCheckConflict, fieldwork.FieldCheckNotExpected)
@idempotent
@blp.arguments(schemas.FieldCheckCreateSchema)
@blp.response(201, schemas.FieldCheckSchema)
def submit_field_check(data: dict[str, Any], application_id: uuid.UUID) -> dict[str, Any]:
    """Record a field check (identity seen, parcels visited, crop seen) for an application.

    Exactly once by ``client_id``: the same content again answers with the stored check. An
    application waiting for the check is decided again at once.
    """
    application = get_visible(db.session, Application, application_id)
    check, created = fieldwork.record_check(
        db.session, application=application, coordinator_id=current_principal().id, **data)
    if not created:
        g.no_audit_needed = True  # the stored check, returned again: nothing changed
    return fieldwork.check_views(db.session, [check])[0]
