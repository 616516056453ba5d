"""What staff review adds to the application tables: the farmer's answers to staff questions,
and the rule that a case has at most one open field assignment.

A question is the ``request_information`` :class:`~lending.applications.models.ReviewAction`
(its ``reason`` is the question); the farmer's answer is a new row here, never an edit of the
question, so the case shows who asked what, and what the farmer said, as it happened.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.authz import Principal
from core.db import Model, fk
from core.people.models import Farmer
from lending.applications.models import Application, FieldAssignment, ReviewAction

ANSWER_MAX = 2000


class InformationAnswer(Model):
    """The farmer's answer to one staff question (one answer per question)."""

    __tablename__ = "information_answers"
    __noun__ = "answer"

    application_id: Mapped[int] = fk("loan_applications.id", index=True)
    application: Mapped[Application] = relationship()
    # The request_information action answered: unique, so a question is answered once even
    # when two answers race.
    request_id: Mapped[int] = fk("review_actions.id", unique=True)
    request: Mapped[ReviewAction] = relationship()
    farmer_id: Mapped[int] = fk("farmers.id")
    farmer: Mapped[Farmer] = relationship()
    answer: Mapped[str] = mapped_column(sa.String(ANSWER_MAX))

    @classmethod
    def visible_to(cls, principal: Principal) -> sa.ColumnElement[bool]:
        scoped = sa.select(Application.id).where(Application.visible_to(principal))
        return cls.application_id.in_(scoped)


# At most one open field_check assignment per application (post-loan visits, one per kind and
# occasion, are servicing's): ``open_assignment`` returns the open
# one, and this index makes two concurrent calls unable to open a second.
ONE_OPEN_ASSIGNMENT = sa.Index(
    "uq_field_assignments_open_application", FieldAssignment.application_id, unique=True,
    postgresql_where=sa.text("status = 'open' AND kind = 'field_check'"),
    sqlite_where=sa.text("status = 'open' AND kind = 'field_check'"))
