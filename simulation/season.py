"""The day loop: each business day of the season, pinned as ``NONGDAI_BUSINESS_DATE``, the
people act over HTTP (farmers sign in by SMS code and apply; coordinators visit offline and
sync when the signal allows; staff review referred cases with four eyes; then the servicing
steps of :mod:`simulation.servicing`), and the bank's registered jobs run for that day through
:func:`core.jobs.run`, as the scheduler would run them overnight.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import requests
from tqdm import tqdm

from core import jobs
from simulation import actors
from simulation.servicing import Servicing
from simulation.tally import Options, Tally
from simulation.world import PASSWORD, World

# Housekeeping jobs clean up by wall-clock age, which a season compressed into a minute hardly
# advances: they run every HOUSEKEEPING_EVERY days; every other job runs every business day.
HOUSEKEEPING = frozenset({"auth.purge", "idempotency.purge", "ratelimit.purge",
                          "registries.purge_cache", "sync.feed_retention",
                          "sync.uploads.expire"})
HOUSEKEEPING_EVERY = 7
FINAL = frozenset({"approved", "declined", "withdrawn", "expired"})
SIGNAL = 0.55  # chance a coordinator's phone finds a signal on a given day
DROUGHT_DAY_SHARE = 0.45  # the drought strikes this far into the season


class Season:
    """One season over one :class:`~simulation.world.World`."""

    def __init__(self, world: World, options: Options) -> None:
        self.world, self.options = world, options
        self.rng = random.Random(options.seed + 1)  # noqa: S311 - replayable behaviour
        self.http = requests.Session()
        self.tally = Tally()
        self.staff = {role: self._staff(username) for role, username in world.staff.items()}
        self.farmers = [actors.Farmer(seed, actors.Api(world.base_url, self.http),
                                      random.Random(f"{options.seed}-{seed.phone}"))  # noqa: S311
                        for seed in world.farmers]
        self.coordinators: list[actors.Coordinator] = []
        self.recommended: dict[str, bool] = {}  # case -> declined
        self.products: dict[str, str] = {}
        self.servicing = Servicing(world, options, self.tally, staff=self.staff,
                                   farmers=self.farmers, rng=self.rng)
        self.drought_day = max(1, int(options.days * DROUGHT_DAY_SHARE))

    # -- set-up -------------------------------------------------------------------------------

    def _staff(self, username: str) -> actors.Api:
        api = actors.Api(self.world.base_url, self.http)
        api.sign_in(username, PASSWORD)
        return api

    def prepare(self) -> None:
        """Coordinators sign their phones in; the products are looked up."""
        folder = self.world.folder / "devices"
        folder.mkdir(exist_ok=True)
        for village in self.world.villages:
            coordinator = actors.Coordinator.on_device(
                self.world.base_url, village.coordinator, folder, self.rng,
                drop=self.options.drop, lose=self.options.lose)
            coordinator.sign_in(PASSWORD)
            self.coordinators.append(coordinator)
        for product in self.staff["reviewer"].ok("GET", "/products")["items"]:
            self.products[product["code"]] = product["id"]

    def close(self) -> None:
        """The phones' local databases; the HTTP connections."""
        for coordinator in self.coordinators:
            coordinator.device.close()
        self.http.close()

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> Tally:
        self.prepare()
        days = range(self.options.days)
        bar = tqdm(days, desc="农贷季 season", unit="天", disable=not self.options.progress,
                   dynamic_ncols=True)
        for n in bar:
            today = self.options.start + timedelta(days=n)
            self.world.app.config["NONGDAI_BUSINESS_DATE"] = today.isoformat()
            self.day(n, today)
            bar.set_postfix_str(f"{today} loans={len(self.servicing.loans)} "
                                f"repaid={self.tally.repaid_fen // 100:,}元", refresh=False)
        self.tally.end = self.options.start + timedelta(days=self.options.days - 1)
        self.tally.sms = actors.SmsInbox.count()
        return self.tally

    def day(self, n: int, today: date) -> None:
        servicing = self.servicing
        steps: list[tuple[str, Callable[[], None]]] = [
            ("apply", lambda: self._apply_due(n)),
            ("field work", self._field_work),
            ("applications", self._follow_applications),
            ("review", self._review),
            ("offers", lambda: servicing.accept_offers(today)),
            ("disbursement", servicing.disburse),
            ("drought", lambda: servicing.drought(today) if n == self.drought_day else None),
            ("draws", lambda: servicing.draw(today)),
            ("repayments", lambda: servicing.repay(today)),
            ("jobs", lambda: self._run_jobs(today, housekeeping=n % HOUSEKEEPING_EVERY == 0)),
            ("relief", servicing.relief),
        ]
        for name, step in steps:
            began = time.perf_counter()
            step()
            self.tally.seconds[name] += time.perf_counter() - began

    def _apply_due(self, n: int) -> None:
        for farmer in self.farmers:
            if farmer.seed.apply_day == n:
                self._apply(farmer)

    # -- origination ----------------------------------------------------------------------------

    def _apply(self, farmer: actors.Farmer) -> None:
        product = self.products.get(farmer.seed.product_code)
        if product is None:
            return
        try:
            farmer.sign_in()
            actors.grant_consents(farmer.api)
            state = farmer.apply(product)
        except actors.SimulationError as error:
            self.tally.errors.append(str(error))
            return
        self.tally.paths[f"submitted → {state}"] += 1

    def _field_work(self) -> None:
        for coordinator in self.coordinators:
            coordinator.visit()
            if self.rng.random() < SIGNAL:
                coordinator.sync()

    def _follow_applications(self) -> None:
        for farmer in self.farmers:
            if farmer.application_id and farmer.state not in FINAL:
                before = farmer.state
                try:
                    after = farmer.refresh_state()
                except actors.SimulationError as error:
                    self.tally.errors.append(str(error))
                    continue
                if after != before:
                    self.tally.paths[f"{before} → {after}"] += 1

    def _review(self) -> None:
        """Referred cases: the reviewer recommends, an approver decides (four eyes)."""
        if not any(farmer.state == "under_review" for farmer in self.farmers):
            return
        reviewer, approver = self.staff["reviewer"], self.staff["approver"]
        queue = reviewer.ok("GET", "/review/queue", params={"limit": 100}).get("items", [])
        by_application = {f.application_id: f for f in self.farmers if f.application_id}
        waiting = sorted((by_application[str(item["id"])].seed.phone, str(item["id"]), item)
                         for item in queue if str(item["id"]) in by_application)
        for _phone, case_id, item in waiting:
            if case_id not in self.recommended:
                decline = by_application[case_id].rng.random() < 0.1
                self.recommended[case_id] = decline
                action = "recommend_decline" if decline else "recommend_approve"
                reason = "经营收入难以覆盖还款" if decline else "实地核查与登记数据一致"
                answer = reviewer.call("POST", f"/review/applications/{case_id}/actions",
                                       idempotent=True, json_body={"action": action,
                                                                   "reason": reason})
                self.tally.reviews[f"{action} {answer.status_code}"] += 1
            decline = self.recommended[case_id]
            final = "decline" if decline else "approve"
            body: dict[str, Any] = {"action": final, "reason": "同意审查意见"}
            if final == "approve":
                body["amount_fen"] = item.get("amount_fen")
            answer = approver.call("POST", f"/review/applications/{case_id}/actions",
                                   idempotent=True, json_body=body)
            self.tally.reviews[f"{final} {answer.status_code}"] += 1

    # -- servicing ------------------------------------------------------------------------------

    # -- the bank's night -----------------------------------------------------------------------

    def _run_jobs(self, today: date, *, housekeeping: bool) -> None:
        app = self.world.app
        with app.app_context():
            for name in sorted(app.extensions.get("nongdai_jobs", {})):
                if name in HOUSEKEEPING and not housekeeping:
                    continue
                began = time.perf_counter()
                try:
                    self.tally.jobs[f"{name} {jobs.run(name, on=today)}"] += 1
                except Exception as error:  # the report names the failure
                    self.tally.jobs[f"{name} failed"] += 1
                    self.tally.errors.append(f"job {name} on {today}: {error!r}"[:300])
                self.tally.seconds[f"job {name}"] += time.perf_counter() - began
