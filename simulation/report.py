"""The season's report: what the people did (counted from the bank's answers), the portfolio
at the end (disbursed, repaid, PAR30 by village, from ``GET /portfolio/par`` when served),
relief granted, and the ledger check's verdict (:func:`lending.ledger.check.run`).

Labels are Chinese first, English after, as every text a person reads in Nongdai.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.db import db
from lending.ledger import check
from simulation.season import Season
from simulation.tally import Options, Tally


@dataclass
class Verdict:
    """The ledger check's answer: passed or not, and its lines (one per invariant)."""

    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)
    text: str = ""


@dataclass
class Report:
    options: Options
    tally: Tally
    par_by_village: list[dict[str, Any]]
    ledger: Verdict
    network: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.ledger.ok and not self.tally.errors


def ledger_verdict(season: Season) -> Verdict:
    """Run the ledger check (every invariant of the journal and the loans' balances) in the
    simulated bank's own context, as ``flask ledger check`` would."""
    with season.world.app.app_context():
        try:
            result = check.run(db.session)
        finally:
            db.session.rollback()
            db.session.remove()
    return Verdict(ok=result.ok, summary=result.summary(), problems=result.problems,
                   text=result.text())


def par_by_village(season: Season) -> list[dict[str, Any]]:
    """PAR30 by village as the bank reports it (``GET /portfolio/par``)."""
    if not season.servicing.available["par"] or season.tally.end is None:
        return []
    answer = season.staff["reviewer"].call("GET", "/portfolio/par", params={
        "level": "village", "date": season.tally.end.isoformat()})
    if answer.status_code != 200:
        season.tally.errors.append(f"par: {answer.status_code} {answer.text[:200]}")
        return []
    body = answer.json()
    rows = sorted(body.get("rows") or [], key=lambda row: str(row.get("code") or row["name"]))
    return [*rows, {**(body.get("total") or {}), "name": "合计 total"}] if rows else []


def build(season: Season, tally: Tally) -> Report:
    network: dict[str, int] = {}
    for coordinator in season.coordinators:
        for key, count in coordinator.network.faults.items():
            network[key] = network.get(key, 0) + count
        for key, count in coordinator.syncs.items():
            network[f"sync {key}"] = network.get(f"sync {key}", 0) + count
        network["field visits recorded"] = network.get("field visits recorded", 0) + len(
            coordinator.done)
        network["ops still on phones"] = network.get("ops still on phones", 0) + \
            coordinator.device.pending()
    return Report(options=season.options, tally=tally, par_by_village=par_by_village(season),
                  ledger=ledger_verdict(season), network=network)


LABELS = {
    "accepted term": "签约定期贷款 term loans accepted",
    "accepted line": "签约随借随还额度 lines accepted",
    "line draws": "额度支用 line draws",
    "dropped": "请求未发出 requests dropped",
    "answer lost": "应答丢失 answers lost",
    "sync completed": "同步完成 syncs completed",
    "sync interrupted": "同步中断 syncs interrupted",
    "field visits recorded": "实地走访 field visits recorded",
    "ops still on phones": "手机待推送 ops still on phones",
}


def label(key: str) -> str:
    return LABELS.get(key, key)


def yuan(fen: int) -> str:
    return f"{fen / 100:,.2f} 元"


def _par_line(row: dict[str, Any]) -> str:
    par = int(row.get("par30_bp") or 0)
    outstanding, at_risk = int(row.get("outstanding_fen") or 0), int(row.get("par30_fen") or 0)
    return (f"  {row.get('name')!s:<10} 贷款 loans {int(row.get('loans') or 0):>4}   "
            f"在贷余额 outstanding {yuan(outstanding):>16}   "
            f"逾期30天以上 at risk {yuan(at_risk):>14}   PAR30 {par / 100:.2f}%")


def render(report: Report) -> str:
    t, o = report.tally, report.options
    lines = [
        "",
        "══ 农贷季度模拟报告 · Nongdai season simulation report ══",
        f"种子 seed {o.seed} · 村 villages {o.villages} · 每村农户 farmers/village {o.farmers} · "
        f"天数 days {o.days} ({o.start} → {t.end})",
        "",
        "申请 Applications",
        *(f"  {path:<40} {count:>5}" for path, count in sorted(t.paths.items())),
        "  人工审核 staff review actions: "
        + (", ".join(f"{k} x{v}" for k, v in sorted(t.reviews.items())) or "无 none"),
        "",
        "协贷员手机 Coordinators' devices (intermittent network)",
        *(f"  {label(k):<40} {v:>5}" for k, v in sorted(report.network.items())),
        "",
        "贷款 Loans",
        *(f"  {label(k):<40} {v:>5}" for k, v in sorted(t.loans.items())),
        f"  放款 disbursed                           {yuan(t.disbursed_fen):>20} "
        f"({t.disbursements} 笔 payouts; 双人复核拒绝自批 four-eyes refusals "
        f"{t.four_eyes_refused})",
        f"  还款 repaid                              {yuan(t.repaid_fen):>20} "
        f"({t.repayments} 笔 payments; 重复通知 duplicate notices answered "
        f"{t.duplicates_answered})",
        "",
        "逾期 Portfolio at risk, by village (PAR30)",
        *([_par_line(row) for row in report.par_by_village] or ["  (未提供 not served)"]),
        "",
        "旱灾与救助 Drought and relief",
        f"  受灾村 villages hit: {'、'.join(t.drought_villages) or '无 none'}; "
        f"保险定损 claims assessed: {t.claims_planted}",
        f"  救助 relief: {t.relief.get('granted', 0)} 件批准 granted"
        + (f" ({', '.join(f'{k} x{v}' for k, v in sorted(t.relief.items()) if k != 'granted')})"
           if t.relief else ""),
        "",
        f"短信 SMS sent: {t.sms}",
        "用时 Wall-clock seconds, largest first: " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(t.seconds.items(), key=lambda kv: -kv[1])[:8]),
        "夜间作业 Jobs: " + ", ".join(f"{k} x{v}" for k, v in sorted(t.jobs.items())),
        "",
        f"账务核对 Ledger check: {'通过 PASSED' if report.ledger.ok else '未通过 FAILED'}"
        f" — {report.ledger.summary}",
        *(f"  {line}" for line in report.ledger.text.splitlines()),
    ]
    if t.missing:
        lines += ["", "未提供的服务接口 Servicing routes not served (skipped): "
                  + ", ".join(t.missing)]
    if t.errors:
        lines += ["", f"错误 Errors ({len(t.errors)}):", *(f"  {e}" for e in t.errors[:15])]
    return "\n".join(lines)

