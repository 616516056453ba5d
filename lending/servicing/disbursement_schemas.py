"""Request and response shapes of disbursements and payout instructions."""

from __future__ import annotations

from marshmallow import fields, validate

from core.api import Identifier, PageArgs, ResponseSchema, Schema, Text, page_schema
from lending.servicing import disbursement, payouts

REASON = validate.Length(min=1, max=500)


class BatchId(Identifier):
    """A payout batch id: letters, digits, '-' and '_'."""

    SHAPE = "[A-Za-z0-9_-]{1,60}"
    ERROR = "A batch id: 1 to 60 of A-Z, a-z, 0-9, '-' and '_'."
    EXAMPLE = "20270301-core-1"


class CoreReference(Identifier):
    """The core banking system's own reference of a payment."""

    SHAPE = "[A-Za-z0-9_./:-]{1,80}"
    ERROR = "A core reference: 1 to 80 of A-Z, a-z, 0-9 and '_./:-'."
    EXAMPLE = "CBS-20270301-000123"


# --- disbursements ----------------------------------------------------------------------------

class DisbursementSchema(ResponseSchema):
    id = fields.UUID(metadata={"description": "The disbursement's id"})
    loan_id = fields.UUID()
    seq = fields.Integer(metadata={"description": "1 for a loan; 1, 2, ... for a line's draws"})
    amount_fen = fields.Integer()
    status = fields.String(validate=validate.OneOf(disbursement.STATUSES), metadata={
        "description": "initiated -> authorised (booked) | rejected; failed: booked, then "
                       "the payout failed and was reversed"})
    reason = fields.String(metadata={"description": "The initiator's note"})
    initiated_by = fields.String(metadata={"description": "Who initiated it (staff:<id>, or "
                                                          "farmer:<id> for a line draw)"})
    authorised_by = fields.UUID(allow_none=True, metadata={
        "description": "The staff member who authorised it"})
    authorised_at = fields.DateTime(allow_none=True)
    business_date = fields.Date(allow_none=True, metadata={"description": "Booked on"})
    created_at = fields.DateTime()
    payout_id = fields.UUID(allow_none=True, metadata={"description": "Its payout instruction"})
    payout_status = fields.String(allow_none=True,
                                  validate=validate.OneOf(payouts.STATUSES))


DisbursementPage = page_schema(DisbursementSchema, "DisbursementPage")


class DisbursementCreateSchema(Schema):
    RESOURCE = DisbursementSchema

    reason = Text(validate=validate.Length(max=500), load_default="", metadata={
        "description": "A note for the approver"})


class DisbursementRejectSchema(Schema):
    reason = Text(required=True, validate=REASON)


class DisbursementListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(disbursement.STATUSES), metadata={
        "description": "Only disbursements in this status (initiated: waiting for an "
                       "approver)"})


# --- payouts ----------------------------------------------------------------------------------

class PayeeSchema(ResponseSchema):
    name = fields.String()
    id_number_masked = fields.String(metadata={"description": "e.g. 3305**********1231"})
    phone = fields.String()


class PayoutSchema(ResponseSchema):
    id = fields.UUID(metadata={"description": "The instruction's id"})
    disbursement_id = fields.UUID()
    loan_id = fields.UUID()
    amount_fen = fields.Integer()
    payee = fields.Nested(PayeeSchema)
    status = fields.String(validate=validate.OneOf(payouts.STATUSES))
    batch = fields.String(allow_none=True)
    created_at = fields.DateTime()
    exported_at = fields.DateTime(allow_none=True)
    confirmed_at = fields.DateTime(allow_none=True)
    core_reference = fields.String(allow_none=True)


PayoutPage = page_schema(PayoutSchema, "PayoutPage")


class PayoutListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(payouts.STATUSES), metadata={
        "description": "Only instructions in this status (pending: waiting for collection)"})


class PayoutExportSchema(Schema):
    batch = BatchId(metadata={"description": "The batch to create or, when it exists, to "
                                             "answer again (default: a new id)"})


class PayoutBatchSchema(ResponseSchema):
    batch = fields.String()
    items = fields.List(fields.Nested(PayoutSchema))
    csv = fields.String(metadata={"description": "The same batch as the CSV file the "
                                                 "`flask payouts export` command writes"})


class PayoutConfirmSchema(Schema):
    core_reference = CoreReference(required=True)


class PayoutFailSchema(Schema):
    reason = Text(required=True, validate=REASON)
