"""``record_consent``: a farmer's consent given to the coordinator in the field (PIPL).

Recorded through core's own service (:func:`core.people.services.grant_consent`) as channel
``coordinator``, with the photo of the signed form as its evidence (its SHA-256; the operation
waits, deferred, until the photo has arrived). The consent runs from when the bank received it
for ``NONGDAI_CONSENT_MAX_DAYS``: nothing may be queried on its strength before the bank holds
it, whatever the device's ``granted_at`` says (kept in the audit trail as the device's claim).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from agents import lookups, payloads
from core import audit
from core.authz import Principal
from core.i18n import _
from core.people import services
from core.people.models import Farmer
from core.people.schemas import CONSENT_PURPOSES
from sync.registry import Deferred, Op, Outcome

if TYPE_CHECKING:
    from sync.push.engine import Context

KEYS: Final = ("farmer_id", "purpose", "evidence_photo", "granted_at")


def record_consent(ctx: Context, op: Op) -> Outcome:
    payload, errors = op.payload, payloads.Errors()
    farmer_id = payloads.a_uuid(payload, "farmer_id", errors)
    purpose = payloads.choice(payload, "purpose", CONSENT_PURPOSES, errors)
    evidence = payloads.photos({"evidence_photo": [payload.get("evidence_photo")]}
                               if isinstance(payload, dict) else {}, "evidence_photo", errors)
    granted_at = payloads.moment(payload, "granted_at", errors)
    payloads.check(payload, KEYS, errors)
    session = ctx.session
    ids = {farmer_id} if farmer_id else set()
    ref = lookups.farmer_in_scope(lookups.farmers(session, ids), farmer_id, ctx.village_ids)
    if not ctx.attachments_ready(evidence):
        raise Deferred("attachment-missing", _("The photo of the consent is not uploaded yet."))
    farmer = session.get_one(Farmer, ref.id)
    by = Principal(kind="coordinator", id=ctx.coordinator_id,
                   public_id=ctx.coordinator_public_id, roles=frozenset({"coordinator"}),
                   village_ids=ctx.village_ids, device_id=ctx.device_id)
    consent = services.grant_consent(
        session, farmer, by, purpose=str(purpose), evidence=evidence[0],
        valid_days=int(ctx.config["NONGDAI_CONSENT_MAX_DAYS"]))
    audit.record(session, "consent.recorded_in_field", consent, actor=ctx.actor, summary={
        "device_entity_id": str(op.entity_id),
        "granted_at_on_device": granted_at.isoformat() if granted_at else None})
    return Outcome({"consent_id": str(consent.public_id),
                    "expires_at": consent.expires_at.isoformat()})
