"""``python -m lending.registries.reference``: serve the reference registry until Ctrl-C/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import date

from lending.registries.reference.server import THREADS, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lending.registries.reference",
        description="A reference land + insurance registry with synthetic records and fault "
                    "switches, for the demo and the tests (never for production data).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100)
    parser.add_argument("--latency-ms", type=int, default=0,
                        help="added to every registry answer (default 0)")
    parser.add_argument("--seed", default="nongdai", help="seed of the synthetic records")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None,
                        help="the registry's calendar day (default: today)")
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args(argv)
    server, _ = build(host=args.host, port=args.port, latency_ms=args.latency_ms,
                      seed=args.seed, as_of=args.as_of, threads=args.threads)
    base = f"http://{args.host}:{server.effective_port}"
    print(f"reference registry on {base}: land {base}/land, insurance {base}/insurance",  # noqa: T201
          flush=True)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.task_dispatcher.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
