"""HTTP API and CLI of disbursement and payouts.

Staff initiate (reviewer or approver) and authorise or reject (approver, four eyes) a loan's
disbursement; the bank's core system (a staff account with the approver or admin role)
collects payout instructions and answers for each. ``flask payouts export`` is the file
collection. The rules are in :mod:`lending.servicing.disbursement` and
:mod:`lending.servicing.payouts`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app, g
from flask.cli import AppGroup

from core.api import Blueprint, paginate, raises, register
from core.audit import SYSTEM
from core.authz import access, current_principal, get_visible, not_found, visible
from core.db import db
from core.errors import NotFound
from core.idempotency import idempotent
from core.jobs import business_date
from lending.ledger.posting import AlreadyPosted
from lending.servicing import disbursement, payouts
from lending.servicing import disbursement_presenting as present
from lending.servicing import disbursement_schemas as schemas
from lending.servicing.models import Disbursement, Loan, PayoutInstruction

blp = Blueprint("disbursements", __name__, description="Disbursement (four eyes) and payouts")


def _load(model: Any, public_id: uuid.UUID) -> Any:
    """A disbursement or payout instruction by public id, scoped through its loan."""
    row = db.session.scalars(sa.select(model).join(Loan, Loan.id == model.loan_id).where(
        model.public_id == public_id, visible(Loan))).first()
    if row is None:
        raise NotFound(not_found(model))
    return row


@blp.route("/loans/<uuid:loan_id>/disbursements", methods=["POST"])
@access("reviewer", "approver")
@raises(disbursement.LoanNotDisbursable, disbursement.AlreadyInitiated,
        disbursement.AuthoriserRequired)
@idempotent
@blp.arguments(schemas.DisbursementCreateSchema)
@blp.response(201, schemas.DisbursementSchema)
def initiate_disbursement(data: dict[str, Any], loan_id: uuid.UUID) -> dict[str, Any]:
    """Initiate the disbursement of an accepted term loan (an approver then authorises it)."""
    loan = get_visible(db.session, Loan, loan_id)
    row = disbursement.initiate(db.session, loan, current_principal(), **data)
    return present.disbursement(db.session, row)


@blp.route("/disbursements", methods=["GET"])
@access("reviewer", "approver", "admin")
@blp.arguments(schemas.DisbursementListArgs, location="query")
@blp.response(200, schemas.DisbursementPage)
def list_disbursements(args: dict[str, Any]) -> dict[str, Any]:
    """Disbursements, oldest first (``?status=initiated``: the approvers' queue)."""
    stmt = sa.select(Disbursement)
    if args.get("status"):
        stmt = stmt.where(Disbursement.status == args["status"])
    page = paginate(db.session, stmt, Disbursement.public_id, args)
    return {**page, "items": present.disbursements(db.session, page["items"])}


@blp.route("/disbursements/<uuid:disbursement_id>/authorise", methods=["POST"])
@access("approver")
@raises(disbursement.FourEyes, disbursement.NotInitiated, disbursement.AuthoriserRequired,
        disbursement.LoanNotDisbursable, AlreadyPosted)
@blp.response(200, schemas.DisbursementSchema)
def authorise_disbursement(disbursement_id: uuid.UUID) -> dict[str, Any]:
    """Authorise a disbursement someone else initiated: it is booked and paid out at once."""
    row = _load(Disbursement, disbursement_id)
    return present.disbursement(db.session, disbursement.authorise(
        db.session, row, current_principal()))


@blp.route("/disbursements/<uuid:disbursement_id>/reject", methods=["POST"])
@access("reviewer", "approver")
@raises(disbursement.NotInitiated, disbursement.AuthoriserRequired)
@blp.arguments(schemas.DisbursementRejectSchema)
@blp.response(200, schemas.DisbursementSchema)
def reject_disbursement(data: dict[str, Any], disbursement_id: uuid.UUID) -> dict[str, Any]:
    """Reject an initiated disbursement with a reason (approver; or its initiator withdraws
    it). The loan stays accepted."""
    row = _load(Disbursement, disbursement_id)
    return present.disbursement(db.session, disbursement.reject(
        db.session, row, current_principal(), **data))


@blp.route("/payouts", methods=["GET"])
@access("approver", "admin")
@blp.arguments(schemas.PayoutListArgs, location="query")
@blp.response(200, schemas.PayoutPage)
def list_payouts(args: dict[str, Any]) -> dict[str, Any]:
    """Payout instructions, oldest first (``?status=pending``: the core system's
    collection)."""
    page = paginate(db.session, payouts.listing(args.get("status")),
                    PayoutInstruction.public_id, args)
    return {**page, "items": present.payouts(db.session, page["items"])}


@blp.route("/payouts/export", methods=["POST"])
@access("approver", "admin")
@blp.arguments(schemas.PayoutExportSchema)
@blp.response(200, schemas.PayoutBatchSchema)
def export_payouts(data: dict[str, Any]) -> dict[str, Any]:
    """Take every pending instruction into a batch (exported) and answer it; a batch id
    that exists already answers that batch again, unchanged."""
    batch = data.get("batch") or payouts.new_batch(business_date())
    rows, made = payouts.export(db.session, batch=batch, actor=current_principal().ref)
    if not made:
        g.no_audit_needed = True  # the batch answered again: nothing changed
    return {"batch": batch, "items": present.payouts(db.session, rows),
            "csv": payouts.csv_text(db.session, rows)}


@blp.route("/payouts/<uuid:payout_id>/confirm", methods=["POST"])
@access("approver", "admin")
@raises(payouts.PayoutAnswered)
@blp.arguments(schemas.PayoutConfirmSchema)
@blp.response(200, schemas.PayoutSchema)
def confirm_payout(data: dict[str, Any], payout_id: uuid.UUID) -> dict[str, Any]:
    """The core system paid it (its reference); the same answer again changes nothing."""
    row, answered = payouts.confirm(
        db.session, _load(PayoutInstruction, payout_id), business_date=business_date(),
        actor=current_principal().ref, **data)
    if not answered:
        g.no_audit_needed = True  # the same answer again: nothing changed
    return present.payout(db.session, row)


@blp.route("/payouts/<uuid:payout_id>/fail", methods=["POST"])
@access("approver", "admin")
@raises(payouts.PayoutAnswered, payouts.PayoutRepaid)
@blp.arguments(schemas.PayoutFailSchema)
@blp.response(200, schemas.PayoutSchema)
def fail_payout(data: dict[str, Any], payout_id: uuid.UUID) -> dict[str, Any]:
    """The core system could not pay it: the disbursement is reversed (a term loan goes back
    to accepted, its schedule removed); the same answer again changes nothing."""
    row, answered = payouts.fail(
        db.session, _load(PayoutInstruction, payout_id), business_date=business_date(),
        actor=current_principal().ref, **data)
    if not answered:
        g.no_audit_needed = True  # the same answer again: nothing changed
    return present.payout(db.session, row)


# --- CLI --------------------------------------------------------------------------------------

payouts_cli = AppGroup("payouts", help="Payout instructions for the bank's core system.")


@payouts_cli.command("export")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write the CSV file to (default: NONGDAI_PAYOUT_EXPORT_DIR).")
def export_command(out: Path | None) -> None:
    """Write every pending payout instruction to a CSV file and mark them exported (one
    transaction: the file is written before the commit and removed if the commit fails)."""
    folder = out or Path(current_app.config["NONGDAI_PAYOUT_EXPORT_DIR"])
    batch = payouts.new_batch(business_date())
    rows, _made = payouts.export(db.session, batch=batch, actor=SYSTEM)
    if not rows:
        db.session.rollback()
        click.echo("No pending payout instructions.")
        return
    path = payouts.write_file(folder, batch, payouts.csv_text(db.session, rows))
    try:
        db.session.commit()
    except Exception:
        path.unlink(missing_ok=True)
        raise
    click.echo(f"Exported {len(rows)} payout instructions "
               f"({sum(r.amount_fen for r in rows)} fen) to {path}")


def init_app(app: Flask) -> None:
    """Register the disbursement blueprint, the payout adapter and ``flask payouts``."""
    register(app, blp)
    app.extensions.setdefault("nongdai_payout_adapter", payouts.OutboxAdapter())
    app.cli.add_command(payouts_cli)
