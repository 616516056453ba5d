"""What a season is run with (:class:`Options`) and what it counts (:class:`Tally`), from the
bank's answers, for the report."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date


@dataclass
class Options:
    """The command line's options (see :func:`simulation.parse`)."""

    villages: int = 3
    farmers: int = 20  # per village
    days: int = 240
    seed: int = 7
    start: date = date(2027, 3, 8)
    drop: float = 0.2  # share of the coordinators' requests that never leave the phone
    lose: float = 0.1  # share whose answer is lost after the server handled them
    progress: bool = True


@dataclass
class Tally:
    """Everything the report needs, counted from the bank's answers."""

    paths: Counter[str] = field(default_factory=Counter)
    reviews: Counter[str] = field(default_factory=Counter)
    loans: Counter[str] = field(default_factory=Counter)
    disbursed_fen: int = 0
    disbursements: int = 0
    four_eyes_refused: int = 0
    repaid_fen: int = 0
    repayments: int = 0
    duplicates_answered: int = 0
    relief: Counter[str] = field(default_factory=Counter)
    drought_villages: list[str] = field(default_factory=list)
    claims_planted: int = 0
    jobs: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    sms: int = 0
    end: date | None = None
    seconds: defaultdict[str, float] = field(  # wall-clock time by step
        default_factory=lambda: defaultdict(float))
