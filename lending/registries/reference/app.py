"""The reference registry's HTTP API: the registry endpoints and the ``/_control`` switches."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import marshmallow as ma
from flask import Flask, Response, request
from marshmallow import fields, validate

from lending.registries import wire
from lending.registries.reference.state import MODES, UNKNOWN, Fault, Seen, State

HOLDER_HASH = re.compile(r"[0-9a-f]{64}")
Produce = Callable[[], tuple[int, Any]]


def create_app(*, seed: str = "nongdai", latency_ms: int = 0,
               as_of: date | None = None) -> Flask:
    """A reference land + insurance registry (see the package's docstring)."""
    app = Flask("nongdai_reference_registry")
    state = State(seed=seed, latency_ms=latency_ms, as_of=as_of)
    app.extensions["reference_registry"] = state
    _registry_routes(app, state)
    _control_routes(app, state)
    return app


def _json(status: int, data: Any) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status,
                    mimetype="application/json")


def _holder(holder_hash: str) -> str | None:
    return holder_hash if HOLDER_HASH.fullmatch(holder_hash) else None


# --- the registries --------------------------------------------------------------------------

def _registry_routes(app: Flask, state: State) -> None:
    @app.get("/land/v1/holders/<holder_hash>/certificates")
    def land_certificates(holder_hash: str) -> Response:
        if _holder(holder_hash) is None:
            return _json(400, {"error": "not a holder hash"})
        return _answer(state, "land", "/holders/{hash}/certificates",
                       lambda: _found(state.land(holder_hash)))

    @app.get("/land/v1/certificates/<number>")
    def land_certificate(number: str) -> Response:
        return _answer(state, "land", "/certificates/{number}",
                       lambda: _found(state.certificate(number)))

    @app.get("/insurance/v1/holders/<holder_hash>/policies")
    def insurance_policies(holder_hash: str) -> Response:
        if _holder(holder_hash) is None:
            return _json(400, {"error": "not a holder hash"})
        return _answer(state, "insurance", "/holders/{hash}/policies",
                       lambda: _found(state.insurance(holder_hash)))


def _found(record: Any) -> tuple[int, Any]:
    if record is None or record is UNKNOWN:
        return 404, {"error": "not found"}
    return 200, record


def _answer(state: State, registry: str, endpoint: str, produce: Produce) -> Response:
    """Meet the fault this request draws, then answer (or not) as it says."""
    fault = state.take_fault(registry)
    seen = state.note(registry, endpoint, fault.mode, connection=(
        f"{request.environ.get('REMOTE_ADDR')}:{request.environ.get('REMOTE_PORT')}"))
    if not state.sleep(fault.latency_ms):
        return _logged(seen, _json(503, {"error": "shutting down"}))
    if fault.mode == "timeout" and not state.sleep(fault.hang_ms):
        return _logged(seen, _json(503, {"error": "hang interrupted"}))
    if fault.mode == "error":
        return _logged(seen, _json(fault.status, {"error": "injected fault"}))
    status, data = produce()
    body = json.dumps(data, ensure_ascii=False).encode()
    if fault.mode == "malformed" and status == 200:
        body = _malformed(fault.variant, body)
    if fault.mode == "trickle":
        return _logged(seen, _trickle(state, status, body, fault))
    return _logged(seen, Response(body, status=status, mimetype="application/json"))


def _malformed(variant: str, body: bytes) -> bytes:
    if variant == "shape":  # valid JSON, wrong shape for every endpoint
        return json.dumps({"certificates": [{"number": 42}], "policies": "none",
                           "number": 42}).encode()
    if variant == "truncated":
        return body[: len(body) // 2]
    return b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def _trickle(state: State, status: int, body: bytes, fault: Fault) -> Response:
    """The real answer, ``chunk_bytes`` at a time every ``interval_ms``: each read by the
    client gets something before its read timeout, only a deadline on the whole body helps."""
    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), fault.chunk_bytes):
            if start and not state.sleep(fault.interval_ms):
                return
            yield body[start:start + fault.chunk_bytes]

    response = Response(pieces(), status=status, mimetype="application/json")
    response.headers["Content-Length"] = str(len(body))
    return response


def _logged(seen: Seen, response: Response) -> Response:
    def done() -> None:
        seen.status, seen.ended = response.status_code, time.monotonic()

    response.call_on_close(done)
    return response


# --- the switches ----------------------------------------------------------------------------

class ReferenceFaultBody(ma.Schema):
    """``PUT /_control/faults``: replaces the fault of one registry or both."""

    class Meta:
        unknown = ma.RAISE

    registry = fields.String(required=True,
                             validate=validate.OneOf(("land", "insurance", "both")))
    mode = fields.String(required=True, validate=validate.OneOf(MODES))
    latency_ms = fields.Integer(strict=True, validate=validate.Range(min=0, max=600_000))
    rate = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=1))
    count = fields.Integer(strict=True, allow_none=True, load_default=None,
                           validate=validate.Range(min=0))
    status = fields.Integer(strict=True, load_default=503, validate=validate.Range(400, 599))
    variant = fields.String(load_default="text",
                            validate=validate.OneOf(("text", "shape", "truncated")))
    chunk_bytes = fields.Integer(strict=True, load_default=4, validate=validate.Range(min=1))
    interval_ms = fields.Integer(strict=True, load_default=100,
                                 validate=validate.Range(min=0, max=60_000))
    hang_ms = fields.Integer(strict=True, load_default=30_000,
                             validate=validate.Range(min=0, max=600_000))


class ReferenceClaimBody(ma.Schema):
    """``POST /_control/holders/<hash>/claims``: one claim added to the holder's record."""

    class Meta:
        unknown = ma.RAISE

    policy_number = fields.String(validate=validate.Length(min=1, max=40))
    crop = fields.String(validate=validate.Length(min=1, max=30))
    event = fields.String(required=True, validate=validate.Length(min=1, max=30))
    event_date = fields.Date(required=True)
    loss_ratio = fields.Decimal(required=True, places=2, as_string=True,
                                validate=validate.Range(min=0, max=1))
    status = fields.String(load_default="assessed", validate=validate.OneOf(wire.CLAIM_STATUSES))


def _body() -> Any:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ma.ValidationError("a JSON object is required")
    return data


def _control_routes(app: Flask, state: State) -> None:
    @app.errorhandler(ma.ValidationError)
    def invalid(exc: ma.ValidationError) -> Response:
        return _json(400, {"error": exc.messages})

    @app.put("/_control/faults")
    def put_faults() -> Response:
        data = ReferenceFaultBody().load(_body())
        registry = data.pop("registry")
        data.setdefault("latency_ms", state.latency_ms)
        state.set_fault(registry, Fault(**data))
        return _json(200, {name: vars(fault) for name, fault in state.faults.items()})

    @app.put("/_control/holders/<holder_hash>")
    def put_holder(holder_hash: str) -> Response:
        if _holder(holder_hash) is None:
            return _json(400, {"error": "not a holder hash"})
        state.plant(holder_hash, _planted(holder_hash, _body()))
        return Response(status=204)

    @app.post("/_control/holders/<holder_hash>/claims")
    def post_claim(holder_hash: str) -> Response:
        if _holder(holder_hash) is None:
            return _json(400, {"error": "not a holder hash"})
        data = ReferenceClaimBody().load(_body())
        crop = data.pop("crop", None)
        claim = {**data, "event_date": data["event_date"].isoformat(),
                 "loss_ratio": str(data["loss_ratio"])}
        try:
            record = state.add_claim(holder_hash, claim, crop)
        except LookupError as exc:
            return _json(404, {"error": str(exc)})
        return _json(201, record)

    @app.post("/_control/reset")
    def reset() -> Response:
        state.reset()
        return Response(status=204)

    @app.get("/_control/requests")
    def seen() -> Response:
        return _json(200, {"requests": state.requests()})

    @app.get("/_control/health")
    def health() -> Response:
        return _json(200, {"status": "ok", "seed": state.seed})


def _planted(holder_hash: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check planted records with the clients' own reader, so a test cannot plant a typo."""
    unknown = set(data) - {"land", "insurance"}
    if unknown or not data:
        raise ma.ValidationError("give land and/or insurance")
    records: dict[str, Any] = {}
    for name, given in data.items():
        if given is None:  # the registry does not know this holder: 404
            records[name] = None
            continue
        if not isinstance(given, dict):
            raise ma.ValidationError({name: ["an object or null"]})
        record = {"holder_hash": holder_hash, **given}
        try:
            read = (wire.land_from_json if name == "land" else wire.insurance_from_json)(record)
        except wire.MalformedAnswer as exc:
            raise ma.ValidationError({name: [str(exc)]}) from None
        if read.holder_hash != holder_hash or any(
                c.holder_hash != holder_hash for c in getattr(read, "certificates", ())):
            raise ma.ValidationError({name: ["records of another holder"]})
        records[name] = {k: v for k, v in record.items() if k != "foreign"}
    return records
