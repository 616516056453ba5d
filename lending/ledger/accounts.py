"""The chart of accounts. Codes are stable identifiers stored in every entry.

Per-loan accounts (entries carry the loan's id) hold what one farmer owes or is owed; bank
accounts (no loan id) hold the other side. Debit-normal accounts have positive balances.

========================  ======  ==========================================================
account                   normal  meaning
========================  ======  ==========================================================
loan_principal            debit   principal the farmer owes (per loan)
interest_receivable       debit   interest accrued and not yet paid (per loan)
penalty_receivable        debit   penalty interest accrued and not yet paid (per loan)
overpayment               credit  money the farmer paid beyond what was owed, to refund or
                                  apply (per loan)
payout_clearing           credit  disbursed, not yet confirmed paid out by the core system
repayment_clearing        debit   received from a payment channel or a branch, to settle
                                  with the bank's core system
interest_income           credit  interest earned
penalty_income            credit  penalty interest earned
relief_expense            debit   penalties waived and interest forgiven under relief
core_settlement           credit  the bank's settlement account with its core banking system
                                  (a confirmed payout is paid from it)
========================  ======  ==========================================================
"""

from __future__ import annotations

from typing import Final

LOAN_PRINCIPAL: Final = "loan_principal"
INTEREST_RECEIVABLE: Final = "interest_receivable"
PENALTY_RECEIVABLE: Final = "penalty_receivable"
OVERPAYMENT: Final = "overpayment"
PAYOUT_CLEARING: Final = "payout_clearing"
REPAYMENT_CLEARING: Final = "repayment_clearing"
INTEREST_INCOME: Final = "interest_income"
PENALTY_INCOME: Final = "penalty_income"
RELIEF_EXPENSE: Final = "relief_expense"
CORE_SETTLEMENT: Final = "core_settlement"

PER_LOAN: Final = frozenset({LOAN_PRINCIPAL, INTEREST_RECEIVABLE, PENALTY_RECEIVABLE,
                             OVERPAYMENT})
BANK: Final = frozenset({PAYOUT_CLEARING, REPAYMENT_CLEARING, INTEREST_INCOME, PENALTY_INCOME,
                         RELIEF_EXPENSE, CORE_SETTLEMENT})
ALL: Final = PER_LOAN | BANK

# The loan column that caches each per-loan account's balance, and the sign that turns the
# ledger's balance (debit +) into the column's positive amount.
LOAN_COLUMNS: Final[dict[str, tuple[str, int]]] = {
    LOAN_PRINCIPAL: ("principal_outstanding_fen", 1),
    INTEREST_RECEIVABLE: ("interest_outstanding_fen", 1),
    PENALTY_RECEIVABLE: ("penalty_outstanding_fen", 1),
    OVERPAYMENT: ("overpaid_fen", -1),
}
