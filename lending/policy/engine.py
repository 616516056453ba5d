"""The decision engine: a policy version's JSON Decision Model (JDM) evaluated by zen-engine.

The policy is data: a GoRules JDM graph, edited in the open-source JDM editor, evaluated by
``zen-engine`` (Rust core). This module only runs it and checks what comes out; the limit, the
rules, the score and the outcome are all the JDM's (``docs/credit-policy.md``).

The contract between a JDM and this engine:

- input: the facts snapshot of :mod:`lending.policy.facts`;
- output: ``outcome`` (``approve | decline | refer | field_check``), ``limit_fen`` and
  ``amount_fen`` (whole fen), ``score`` (whole points), ``factors`` (``[{factor, value,
  points}]``) and ``reasons`` (``[{code, kind, params}]``);
- reason codes come from decision-table columns whose field is ``code``, as string literals,
  so that :func:`emitted_codes` can list every code a model can emit without running it; each
  must be registered in :mod:`lending.policy.reasons`;
- factor names likewise come from columns whose field is ``factor``: each must appear exactly
  once in every result (a scorecard with a gap or an overlap is an error, not a lower score).

Speed: ``ZenEngine.evaluate`` with a static loader keeps the compiled graph, while
``ZenDecision.evaluate`` re-reads it on every call (about four times slower), so each policy
version gets its own engine, compiled once per process and kept in :data:`_compiled` (a pure
cache: versions are immutable). Facts go in as the dict itself: zen reads a Python float by its
shortest text, so two-decimal areas arrive as exact decimals (tested), and converting the dict
costs less than ``json.dumps`` plus parsing the text; NaN, infinities and out-of-range numbers
are refused by zen (a :class:`PolicyError`). Tracing doubles the cost, so it is off by default;
a stored decision replays with ``trace=True`` to show which rule rows fired.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import zen

from core.errors import NongdaiError
from core.i18n import _, lazy_gettext
from lending.policy import reasons

log = logging.getLogger(__name__)

OUTCOMES = ("approve", "decline", "refer", "field_check")
_LITERAL = re.compile(r"""\s*(['"])([a-z][a-z0-9_]{0,59})\1\s*\Z""")
_CODE_IN_EXPRESSION = re.compile(r"\bcode\s*:")


class PolicyError(NongdaiError):
    """A decision model that cannot be compiled or evaluated, or gave a malformed result.

    Creating such a version is refused (422). At decision time the caller refers the
    application with the reason ``policy_error`` (:func:`decide_or_refer`): never a 500.
    """

    status, code = 422, "credit-policy-invalid"
    title = lazy_gettext("The credit policy version is not valid")


@dataclass(frozen=True)
class Outcome:
    """One evaluation's result; ``to_json`` is what a decision stores."""

    outcome: str
    limit_fen: int
    amount_fen: int
    score: int
    factors: list[dict[str, Any]]
    reasons: list[dict[str, Any]]
    trace_summary: list[dict[str, Any]] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "limit_fen": self.limit_fen,
                "amount_fen": self.amount_fen, "score": self.score, "factors": self.factors,
                "reasons": self.reasons, "trace_summary": self.trace_summary}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(outcome=data["outcome"], limit_fen=data["limit_fen"],
                   amount_fen=data["amount_fen"], score=data["score"],
                   factors=list(data["factors"]), reasons=list(data["reasons"]),
                   trace_summary=data.get("trace_summary"))


# --- reading a model without running it ------------------------------------------------------

def _table_cells(model: Mapping[str, Any], output_field: str) -> list[str]:
    """Every cell of every decision-table output column whose field is ``output_field``."""
    cells = []
    for node in _nodes(model):
        if node.get("type") != "decisionTableNode":
            continue
        content = node.get("content") or {}
        ids = [out.get("id") for out in content.get("outputs") or []
               if out.get("field") == output_field]
        cells += [str(rule.get(col_id, ""))
                  for rule in content.get("rules") or [] for col_id in ids]
    return cells


def _nodes(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    nodes = model.get("nodes") if isinstance(model, Mapping) else None
    if not isinstance(nodes, list) or not all(isinstance(node, dict) for node in nodes):
        raise PolicyError(_("The decision model has no list of nodes."))
    return nodes


def _literals(model: Mapping[str, Any], output_field: str) -> set[str]:
    values = set()
    for cell in _table_cells(model, output_field):
        match = _LITERAL.match(cell)
        if match is None:
            raise PolicyError(_("Every '%(column)s' cell must be a quoted name such as "
                                "'low_score'; found %(cell)s.", column=output_field,
                                cell=repr(cell[:60])))
        values.add(match.group(2))
    return values


def emitted_codes(model: Mapping[str, Any]) -> set[str]:
    """Every reason code the model can emit (the literals of its ``code`` columns)."""
    for node in _nodes(model):
        for expression in (node.get("content") or {}).get("expressions") or []:
            if _CODE_IN_EXPRESSION.search(str(expression.get("value", ""))):
                raise PolicyError(_("Reasons come from decision tables with a 'code' "
                                    "column; node %(node)s builds one in an expression.",
                                    node=repr(node.get("name"))))
    return _literals(model, "code")


def factor_names(model: Mapping[str, Any]) -> set[str]:
    return _literals(model, "factor")


def check_codes(model: Mapping[str, Any]) -> None:
    """Refuse a model that can emit a code without an explanation, or an engine-only code."""
    codes = emitted_codes(model)
    bad = reasons.unknown(codes) | (codes & reasons.ENGINE_CODES)
    if bad:
        raise PolicyError(_("Unknown reason codes: %(codes)s.", codes=", ".join(sorted(bad))))
    kinds = _literals(model, "kind") - set(reasons.KINDS)
    if kinds:
        raise PolicyError(_("Unknown reason kinds: %(kinds)s.", kinds=", ".join(sorted(kinds))))


# --- compiled versions -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Compiled:
    model: Mapping[str, Any]
    engine: Any  # zen.ZenEngine
    factors: frozenset[str]
    rules: dict[str, dict[str, str]]  # node id -> rule id -> description
    names: dict[str, str]  # node id -> name


_compiled: dict[str, _Compiled] = {}
_lock = threading.Lock()
_TRACE = {"trace": True}


def _error_text(exc: Exception) -> str:
    """zen's message without its Rust backtrace."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _rule_map(model: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return {node["id"]: {str(rule.get("_id")): str(rule.get("_description") or "")
                         for rule in (node.get("content") or {}).get("rules") or []}
            for node in _nodes(model) if node.get("type") == "decisionTableNode"}


def compile_model(model: Mapping[str, Any]) -> _Compiled:
    """Compile ``model`` (no cache): a :class:`PolicyError` when zen cannot read the graph."""
    try:
        content = json.dumps(model)
        zen.ZenEngine().create_decision(content).validate()
        engine = zen.ZenEngine({"loader": {"type": "static",
                                           "content": {"policy": dict(model)}}})
    except Exception as exc:  # zen's errors have no common class: the boundary catches all
        raise PolicyError(_("The decision model does not compile: %(error)s",
                            error=_error_text(exc))) from exc
    return _Compiled(model=model, engine=engine, factors=frozenset(factor_names(model)),
                     rules=_rule_map(model),
                     names={node["id"]: str(node.get("name", "")) for node in _nodes(model)})


def _for(version: str, model: Mapping[str, Any]) -> _Compiled:
    cached = _compiled.get(version)
    if cached is not None and (cached.model is model or cached.model == model):
        return cached
    with _lock:
        compiled = compile_model(model)
        _compiled[version] = compiled
        return compiled


# --- results -------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """zen's numbers as JSON that round-trips: integral floats become ints. zen gives plain
    JSON types (exact ``type`` checks, most values being scalars: every decision runs this)."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() else value
    if kind is dict:
        return {str(key): _plain(item) for key, item in value.items()}
    if kind is list:
        return [_plain(item) for item in value]
    return value


def _whole(result: Mapping[str, Any], key: str) -> int:
    value = result.get(key)
    if type(value) is int:  # zen gives whole decimals as ints: the usual case, checked first
        return value
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return int(value)
    raise PolicyError(_("The decision model's '%(key)s' is not a whole number: %(value)s.",
                        key=key, value=repr(value)[:40]))


def _reasons(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = result.get("reasons")
    if not isinstance(raw, list):
        raise PolicyError(_("The decision model's 'reasons' is not a list."))
    out = []
    for item in raw:
        if not isinstance(item, dict) or not reasons.is_known(str(item.get("code"))) \
                or item.get("kind") not in reasons.KINDS:
            raise PolicyError(_("The decision model gave an unknown reason: %(reason)s.",
                                reason=repr(item)[:120]))
        params = item.get("params") or {}
        if not isinstance(params, dict):
            raise PolicyError(_("Reason %(code)s has parameters that are not an object.",
                                code=item["code"]))
        out.append({"code": item["code"], "kind": item["kind"], "params": _plain(params)})
    return out


def _factors(result: Mapping[str, Any], expected: frozenset[str]) -> list[dict[str, Any]]:
    raw = result.get("factors")
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise PolicyError(_("The decision model's 'factors' is not a list of objects."))
    names = [item.get("factor") for item in raw]
    if len(names) != len(expected) or set(names) != expected:
        raise PolicyError(_("The scorecard gave the factors %(given)s, not each of "
                            "%(expected)s once.", given=", ".join(map(str, names)),
                            expected=", ".join(sorted(expected))))
    return [{"factor": item["factor"], "value": _plain(item.get("value")),
             "points": _whole(item, "points")} for item in raw]


def _outcome(result: Any, compiled: _Compiled) -> Outcome:
    if not isinstance(result, dict) or result.get("outcome") not in OUTCOMES:
        raise PolicyError(_("The decision model gave no valid outcome: %(result)s.",
                            result=repr(result)[:120]))
    limit = _whole(result, "limit_fen")
    if limit < 0:
        raise PolicyError(_("The decision model gave a negative limit."))
    return Outcome(outcome=result["outcome"], limit_fen=limit,
                   amount_fen=_whole(result, "amount_fen"), score=_whole(result, "score"),
                   factors=_factors(result, compiled.factors), reasons=_reasons(result))


def _summary(trace: Mapping[str, Any], compiled: _Compiled) -> list[dict[str, Any]]:
    """Per decision table, in evaluation order: the rule rows that matched."""
    summary = []
    for node_id, step in sorted(trace.items(), key=lambda item: item[1].get("order", 0)):
        if node_id not in compiled.rules:
            continue
        data = step.get("traceData") or []
        hits = data if isinstance(data, list) else [data]
        rule_ids = [str((hit.get("rule") or {}).get("_id")) for hit in hits if hit]
        summary.append({"node": compiled.names.get(node_id, node_id),
                        "rules": [{"id": rid, "description": compiled.rules[node_id].get(rid, "")}
                                  for rid in rule_ids]})
    return summary


# --- the API -----------------------------------------------------------------------------------

def check_model(model: Mapping[str, Any], cases: Iterable[Mapping[str, Any]]) -> None:
    """Refuse a model that names unknown codes, does not compile, or fails on ``cases``
    (compiling does not read expressions; evaluating them does). Nothing is cached."""
    check_codes(model)
    compiled = compile_model(model)
    for facts in cases:
        _evaluate(compiled, "new version", facts, trace=False)


def decide(version: str, decision_model: Mapping[str, Any], facts: Mapping[str, Any], *,
           trace: bool = False) -> Outcome:
    """Evaluate policy ``version`` on ``facts``; deterministic for a version and its facts.

    Raises :class:`PolicyError` when the model cannot be compiled or evaluated, or its result
    breaks the contract above.
    """
    return _evaluate(_for(version, decision_model), version, facts, trace=trace)


def _evaluate(compiled: _Compiled, version: str, facts: Mapping[str, Any], *,
              trace: bool) -> Outcome:
    context = facts if isinstance(facts, dict) else dict(facts)
    try:
        response = compiled.engine.evaluate("policy", context, _TRACE if trace else None)
    except Exception as exc:  # as in compile_model
        raise PolicyError(_("Policy %(version)s could not be evaluated: %(error)s",
                            version=version, error=_error_text(exc))) from exc
    outcome = _outcome(response.get("result"), compiled)
    if trace:
        outcome = replace(outcome, trace_summary=_summary(response.get("trace") or {}, compiled))
    return outcome


def _field(stored: Any, *names: str) -> Any:
    for name in names:
        value = stored.get(name) if isinstance(stored, Mapping) else getattr(stored, name, None)
        if value is not None:
            return value
    raise PolicyError(_("A stored decision needs %(field)s to be replayed.",
                        field=" or ".join(names)))


def replay(stored: Any, *, trace: bool = False) -> Outcome:
    """Evaluate a stored decision again on its own snapshot, as :func:`decide_or_refer` did.

    ``stored`` is a mapping or an object with ``policy_version``, ``decision_model`` and
    ``snapshot`` (or ``facts``). The result equals the stored one (``Outcome`` equality
    ignores the trace summary), a ``policy_error`` referral included.
    """
    return decide_or_refer(_field(stored, "policy_version"), _field(stored, "decision_model"),
                           _field(stored, "snapshot", "facts"), trace=trace)


def policy_error_outcome(facts: Mapping[str, Any]) -> Outcome:
    """The referral given when the policy itself fails: no limit, no score, one reason."""
    application = facts.get("application") if isinstance(facts, Mapping) else None
    amount = application.get("amount_fen", 0) if isinstance(application, Mapping) else 0
    return Outcome(outcome="refer", limit_fen=0, amount_fen=int(amount or 0), score=0,
                   factors=[], reasons=[{"code": "policy_error", "kind": "refer", "params": {}}])


def decide_or_refer(version: str, decision_model: Mapping[str, Any],
                    facts: Mapping[str, Any], *, trace: bool = False) -> Outcome:
    """:func:`decide`, or a referral with ``policy_error`` when the policy fails (logged):
    what a request or a job calls, so a broken policy never answers 500."""
    try:
        return decide(version, decision_model, facts, trace=trace)
    except PolicyError as exc:
        log.error("credit policy %s failed: %s", version, exc.detail)
        return policy_error_outcome(facts)
