"""A reference land-rights + insurance registry, for the demo, the tests and the benchmarks.

It stands in for two systems outside the bank, so its state (planted records, fault switches,
the log of requests it served) lives in its own process memory and nowhere in Nongdai: a
restart forgets it, as a real registry's test double should. Records are synthetic and
deterministic: the same holder hash and seed always give the same certificates, parcels,
policies and claims (``synthetic``).

Registry API (the base URLs are ``<url>/land`` and ``<url>/insurance``)::

    GET /land/v1/holders/<holder_hash>/certificates
    GET /land/v1/certificates/<number>       (404 for a number it never issued)
    GET /insurance/v1/holders/<holder_hash>/policies

Control API (no authentication: bind it to loopback)::

    PUT  /_control/holders/<holder_hash>  {"land": {...} | null, "insurance": {...} | null}
    POST /_control/holders/<holder_hash>/claims  {"event", "event_date", "loss_ratio",
                                                   "status"?, "policy_number"? | "crop"?}
    PUT  /_control/faults   {"registry": "land"|"insurance"|"both",
                             "mode": "none"|"timeout"|"error"|"malformed"|"trickle",
                             "latency_ms": int, "rate": 0..1, "count": n, ...}
    POST /_control/reset
    GET  /_control/requests  (what it served: registry, endpoint, start/end, status, fault)

Run it with ``python -m lending.registries.reference --port 5100 --latency-ms 50`` or, in
process, :func:`start_in_thread`. See docs/registries.md.
"""

from lending.registries.reference.app import create_app
from lending.registries.reference.server import RunningRegistry, start_in_thread

__all__ = ["RunningRegistry", "create_app", "start_in_thread"]
