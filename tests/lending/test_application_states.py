"""The application state machine: every pair of states, and a race between two movers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from core.db import db
from core.people.models import Farmer
from lending.applications import states
from lending.applications.models import Application
from lending.products.models import LoanProduct
from tests import factories as f


def _product(session: Any) -> LoanProduct:
    product = LoanProduct(code=f"P{f._n()}", name="春耕贷", repayment_type="bullet_at_harvest",
                          min_amount_fen=100_000, max_amount_fen=30_000_000,
                          min_term_months=3, max_term_months=12, annual_rate_bp=435,
                          grace_months=0, crops=["rice"], county_codes=[],
                          auto_ceiling_fen=5_000_000)
    session.add(product)
    session.flush()
    return product


def _application(session: Any, farmer: Farmer, product: LoanProduct, state: str) -> Application:
    row = Application(farmer=farmer, village_id=farmer.village_id, product=product, state=state,
                      amount_fen=1_000_000, term_months=8, purpose="化肥", crop="rice",
                      terms={}, info_requested=False)
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def world(session: Any) -> tuple[Farmer, LoanProduct]:
    farmer = f.farmer(session, f.village(session))
    product = _product(session)
    session.commit()
    return farmer, product


def test_every_pair_of_states_is_allowed_or_refused_with_409(session: Any, world: Any) -> None:
    farmer, product = world
    for source, target in itertools.product(states.STATES, repeat=2):
        application = _application(session, farmer, product, source)
        if states.allowed(source, target):
            states.move(session, application, target, actor="system")
            assert application.state == target
        else:
            with pytest.raises(states.IllegalTransition) as refused:
                states.move(session, application, target, actor="system")
            assert refused.value.status == 409
            assert application.state == source
    session.commit()


def test_final_states_go_nowhere_and_every_state_is_in_the_table() -> None:
    assert set(states.TRANSITIONS) == set(states.STATES)
    for final in states.FINAL:
        assert states.TRANSITIONS[final] == frozenset()
    for targets in states.TRANSITIONS.values():
        assert targets <= set(states.STATES)


def test_a_move_from_a_state_someone_else_just_left_is_refused(app: Any, session: Any,
                                                              world: Any) -> None:
    farmer, product = world
    application = _application(session, farmer, product, states.UNDER_REVIEW)
    application_id = application.id
    session.commit()
    with app.app_context():  # a second process approves first
        other = db.session.get(Application, application_id)
        states.move(db.session, other, states.APPROVED, actor="staff:a")
        db.session.commit()
        db.session.remove()
    with pytest.raises(states.IllegalTransition):
        states.move(session, application, states.DECLINED, actor="staff:b")
    assert application.state == states.APPROVED
