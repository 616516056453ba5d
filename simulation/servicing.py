"""The season's servicing steps over HTTP: farmers accept offers, staff disburse with four
eyes and the core system confirms the payouts, households draw on their lines and repay
through their payment channel (on time, late, early or never), an insured drought is assessed
and staff decide the relief the bank proposes.

A route the running app does not serve is skipped (the report names it), so a season runs end
to end on whatever exists.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from simulation import actors
from simulation.tally import Options, Tally
from simulation.world import World, plant

# The servicing routes the season uses: name -> (method, rule with {} for each parameter).
ROUTES = {
    "offer": ("GET", "/applications/{}/offer"),
    "accept": ("POST", "/applications/{}/accept"),
    "loan": ("GET", "/loans/{}"),
    "disburse": ("POST", "/loans/{}/disbursements"),
    "authorise": ("POST", "/disbursements/{}/authorise"),
    "payouts_export": ("POST", "/payouts/export"),
    "payout_confirm": ("POST", "/payouts/{}/confirm"),
    "notify": ("POST", "/payments/notify"),
    "quote": ("GET", "/loans/{}/quote"),
    "draws": ("POST", "/loans/{}/draws"),
    "par": ("GET", "/portfolio/par"),
    "relief_cases": ("GET", "/relief-cases"),
    "relief_actions": ("POST", "/relief-cases/{}/actions"),
}
LOSS_RATIOS = ("0.35", "0.45", "0.60", "0.75")


@dataclass
class LoanTrack:
    """What a farmer knows of their loan, from the answers."""

    farmer: actors.Farmer
    id: str
    kind: str
    status: str = "accepted"
    principal_fen: int = 0
    next_due: date | None = None
    final_due: date | None = None
    pay_on: date | None = None
    drawn: bool = False


class Servicing:
    """The servicing half of a season: the loans as the farmers know them, and the steps."""

    def __init__(self, world: World, options: Options, tally: Tally, *,
                 staff: dict[str, actors.Api], farmers: list[actors.Farmer],
                 rng: random.Random) -> None:
        self.world, self.options, self.tally = world, options, tally
        self.staff, self.farmers, self.rng = staff, farmers, rng
        self.available = available_routes(world)
        tally.missing = sorted(name for name, ok in self.available.items() if not ok)
        self.loans: dict[str, LoanTrack] = {}
        self.relief_recommended: set[str] = set()
        self.relief_decided: set[str] = set()
        self.channel = payment_channel(world, farmers[0].api.http) if farmers else None

    def accept_offers(self, today: date) -> None:
        if not self.available["accept"]:
            return
        for farmer in self.farmers:
            if farmer.state != "approved" or farmer.loan_id:
                continue
            if self.available["offer"]:
                farmer.api.ok("GET", f"/applications/{farmer.application_id}/offer")
            answer = farmer.api.call("POST", f"/applications/{farmer.application_id}/accept",
                                     idempotent=True)
            if answer.status_code != 201:
                self.tally.errors.append(f"accept: {answer.status_code} {answer.text[:200]}")
                farmer.state = "accept-failed"
                continue
            loan = answer.json()
            farmer.loan_id = str(loan.get("id") or loan.get("public_id"))
            track = LoanTrack(farmer=farmer, id=farmer.loan_id, kind=loan.get("kind", "term"),
                              status=loan.get("status", "accepted"),
                              principal_fen=int(loan.get("principal_fen") or 0))
            self.loans[track.id] = track
            self.tally.loans[f"accepted {track.kind}"] += 1
            if track.kind == "line":
                track.pay_on = today + timedelta(days=farmer.rng.randint(10, 60))

    def disburse(self) -> None:
        """Four eyes: a reviewer initiates, an approver authorises. The season's first payout
        is initiated by the second approver, who then tries to authorise it too: the bank must
        refuse (409 ``four-eyes``) before the first approver authorises it."""
        if not (self.available["disburse"] and self.available["authorise"]):
            return
        waiting = [track for track in sorted(self.loans.values(), key=lambda t: t.farmer.seed.phone)
                   if track.kind == "term" and track.status == "accepted"]
        for track in waiting:
            first = self.tally.disbursements == 0 and not self.tally.four_eyes_refused
            initiator = self.staff["approver2" if first else "reviewer"]
            started = initiator.call("POST", f"/loans/{track.id}/disbursements",
                                     idempotent=True, json_body={"reason": "合同已签 放款"})
            if started.status_code != 201:
                self.tally.errors.append(f"initiate: {started.status_code} {started.text[:200]}")
                track.status = "disbursement-failed"
                continue
            disbursement_id = started.json()["id"]
            if first:
                self._try_own_authorisation(initiator, disbursement_id)
            self._authorise(track, disbursement_id)
        if waiting:
            self._payouts()

    def _authorise(self, track: LoanTrack, disbursement_id: str) -> None:
        done = self.staff["approver"].call(
            "POST", f"/disbursements/{disbursement_id}/authorise", idempotent=True, json_body={})
        if done.status_code >= 300:
            self.tally.errors.append(f"authorise: {done.status_code} {done.text[:200]}")
            track.status = "disbursement-failed"
            return
        self.tally.disbursed_fen += int(done.json().get("amount_fen") or 0)
        self.tally.disbursements += 1
        track.status = "active"
        self._refresh(track)

    def _try_own_authorisation(self, initiator: actors.Api, disbursement_id: str) -> None:
        """The initiator authorising their own disbursement must be refused (409)."""
        answer = initiator.call("POST", f"/disbursements/{disbursement_id}/authorise",
                                idempotent=True, json_body={})
        if answer.status_code == 409:
            self.tally.four_eyes_refused += 1
        else:
            self.tally.errors.append(f"four eyes not enforced: {answer.status_code} "
                                     f"{answer.text[:200]}")

    def _payouts(self) -> None:
        """The core system collects the payout instructions and confirms each payment."""
        if not (self.available["payouts_export"] and self.available["payout_confirm"]):
            return
        admin = self.staff["approver2"]
        answer = admin.call("POST", "/payouts/export", idempotent=True, json_body={})
        if answer.status_code >= 300:
            return
        for item in (answer.json() or {}).get("items", []):
            admin.call("POST", f"/payouts/{item['id']}/confirm", idempotent=True,
                       json_body={"core_reference": f"CORE-{str(item['id'])[:8]}"})

    def _refresh(self, track: LoanTrack) -> dict[str, Any] | None:
        if not self.available["loan"]:
            return None
        loan = track.farmer.api.ok("GET", f"/loans/{track.id}")
        track.status = loan.get("status", track.status)
        due = loan.get("next_due") or {}
        track.next_due = date.fromisoformat(due["due_date"]) if due.get("due_date") else None
        rows = loan.get("installments") or []
        track.final_due = date.fromisoformat(rows[-1]["due_date"]) if rows else None
        track.pay_on = self._pay_day(track) if track.kind == "term" else track.pay_on
        return dict(loan)

    def _pay_day(self, track: LoanTrack) -> date | None:
        """When this household pays what falls due next, by its habit."""
        due, habit = track.next_due, track.farmer.seed.behaviour
        if due is None or habit == "never":
            return None
        if habit == "late":
            return due + timedelta(days=track.farmer.rng.randint(12, 75))
        if habit == "early":  # settles everything a few days to weeks before the first due
            return due - timedelta(days=track.farmer.rng.randint(5, 30))
        return due

    def draw(self, today: date) -> None:
        if not self.available["draws"]:
            return
        for track in sorted(self.loans.values(), key=lambda t: t.farmer.seed.phone):
            if track.kind != "line" or track.drawn or track.status != "active":
                continue
            if track.farmer.rng.random() > 0.05:
                continue
            amount = max(100_000, (track.principal_fen // 2) // 100 * 100)
            answer = track.farmer.api.call("POST", f"/loans/{track.id}/draws", idempotent=True,
                                           json_body={"amount_fen": amount})
            if answer.status_code == 201:
                track.drawn = True
                self.tally.disbursed_fen += amount
                self.tally.disbursements += 1
                self.tally.loans["line draws"] += 1
                track.pay_on = today + timedelta(days=track.farmer.rng.randint(30, 120))
            else:
                self.tally.errors.append(f"draw: {answer.status_code} {answer.text[:200]}")

    def repay(self, today: date) -> None:
        if self.channel is None or not (self.available["notify"] and self.available["loan"]):
            return
        for track in sorted(self.loans.values(), key=lambda t: t.farmer.seed.phone):
            if track.pay_on is None or track.pay_on > today or track.status != "active":
                continue
            if track.kind == "line" and (not track.drawn or track.farmer.seed.behaviour
                                         == "never"):
                continue
            loan = self._refresh(track) or {}
            amount = self._amount(track, loan, today)
            if amount > 0:
                self._pay(track, amount, today)
            self._refresh(track)
            if track.kind == "line":
                track.pay_on = None
            elif track.pay_on is not None and track.pay_on <= today:
                track.pay_on = today + timedelta(days=1)  # more is overdue: pay on tomorrow

    def _amount(self, track: LoanTrack, loan: dict[str, Any], today: date) -> int:
        """What the household pays today, from the settlement quote to the day: everything
        when it settles (the last installment, an early settlement, a line), else the next
        installment's principal still due with all interest and penalty owed to the day (the
        bank takes penalty, then interest, then principal)."""
        due = loan.get("next_due") or {}
        if not self.available["quote"]:
            balances = loan.get("balances") or {}
            return int(due.get("amount_fen") or 0) + int(
                balances.get("penalty_outstanding_fen") or 0)
        quote = track.farmer.api.ok("GET", f"/loans/{track.id}/quote",
                                    params={"on": today.isoformat()})
        settling = (track.kind == "line" or track.farmer.seed.behaviour == "early"
                    or not due or due.get("due_date") == str(track.final_due))
        if settling:
            return int(quote.get("total_fen") or 0)
        return (int(due.get("principal_fen") or 0) + int(quote.get("interest_fen") or 0)
                + int(quote.get("penalty_fen") or 0))

    def _pay(self, track: LoanTrack, amount: int, today: date) -> None:
        if self.channel is None:
            return
        answer = self.channel.notify(track.id, amount, today)
        if answer.status_code in (200, 201):
            self.tally.repaid_fen += amount
            self.tally.repayments += 1
            if track.farmer.rng.random() < 0.1:  # the channel delivers the notification twice
                again = self.channel.api.call(
                    "POST", "/payments/notify", data=answer.request.body,  # type: ignore[arg-type]
                    headers={k: str(v) for k, v in answer.request.headers.items()
                             if k in ("Content-Type", "X-Nongdai-Signature")})
                if again.status_code in (200, 201):
                    self.tally.duplicates_answered += 1
        else:
            self.tally.errors.append(f"notify: {answer.status_code} {answer.text[:200]}")

    # -- drought and relief ---------------------------------------------------------------------

    def drought(self, today: date) -> None:
        """An insured drought: the insurer assesses claims on the insured rice parcels of some
        villages (about a third, at least one)."""
        count = max(1, len(self.world.villages) // 3)
        hit = sorted(self.rng.sample(range(len(self.world.villages)), count))
        self.tally.drought_villages = [self.world.villages[i].name for i in hit]
        for seed in self.world.farmers:
            if seed.village_index in hit and seed.insured and seed.crop == "rice":
                plant(self.world, seed, loss_ratio=self.rng.choice(LOSS_RATIOS),
                      event_date=today - timedelta(days=3))
                self.tally.claims_planted += 1

    def relief(self) -> None:
        """Proposed restructures: the reviewer recommends, an approver approves."""
        if not (self.available["relief_cases"] and self.available["relief_actions"]):
            return
        reviewer, approver = self.staff["reviewer"], self.staff["approver"]
        undecided = bool(self.relief_recommended - self.relief_decided)
        for status in ("proposed", "recommended") if undecided else ("proposed",):
            answer = reviewer.call("GET", "/relief-cases", params={"status": status})
            if answer.status_code != 200:
                continue
            for case in sorted(answer.json().get("items", []), key=lambda c: str(c["id"])):
                self._decide_relief(str(case["id"]), reviewer, approver)

    def _decide_relief(self, case_id: str, reviewer: actors.Api, approver: actors.Api) -> None:
        if case_id not in self.relief_recommended:
            answer = reviewer.call("POST", f"/relief-cases/{case_id}/actions", idempotent=True,
                                   json_body={"action": "recommend",
                                              "reason": "保险定损超过三成 建议展期至下一收获期"})
            self.relief_recommended.add(case_id)
            self.tally.relief[f"recommend {answer.status_code}"] += 1
        answer = approver.call("POST", f"/relief-cases/{case_id}/actions", idempotent=True,
                               json_body={"action": "approve", "reason": "同意展期 免除罚息"})
        self.tally.relief[f"approve {answer.status_code}"] += 1
        if answer.status_code >= 300:
            return
        self.tally.relief["granted"] += 1
        self.relief_decided.add(case_id)
        track = self.loans.get(str((answer.json().get("loan") or {}).get("id")))
        if track is not None:  # the new schedule: the household pays by it
            self._refresh(track)


def available_routes(world: World) -> dict[str, bool]:
    """Which of :data:`ROUTES` the app serves."""
    served = {(method, re.sub(r"<[^>]+>", "{}", rule.rule))
              for rule in world.app.url_map.iter_rules() for method in (rule.methods or ())}
    return {name: (method, f"{actors.API}{path}") in served
            for name, (method, path) in ROUTES.items()}


def payment_channel(world: World, http: Any) -> actors.PaymentChannel | None:
    """The first configured payment channel, with its shared secret."""
    secrets = world.app.config.get("NONGDAI_PAYMENT_CHANNEL_SECRETS") or "{}"
    secrets = json.loads(secrets) if isinstance(secrets, str) else dict(secrets)
    if not secrets:
        return None
    code, secret = sorted(secrets.items())[0]
    return actors.PaymentChannel(actors.Api(world.base_url, http), code, secret)
