"""gunicorn's settings for Nongdai's web processes.

    gunicorn -c python:core.serving --workers 4 --bind 0.0.0.0:8000 'app:create_app()'

Each web host runs these behind a reverse proxy that speaks to the phones (TLS, keep-alive,
buffering of slow uploads) and opens one connection to gunicorn per request, as nginx does by
default. The command line may still set ``--workers`` and ``--bind``; threads come from
``NONGDAI_WEB_THREADS`` so that the connection cap below follows them.

- **Threaded workers** (``gthread``): a decision waits about 50 ms on the two registries, a
  sync push on its fsync; a thread waits there while the worker's other threads run. About
  (wait + CPU) / CPU threads keep a core busy; more only queue for the GIL.
- **One request per connection** (``keepalive = 0``): the proxy keeps the phones' connections
  alive, not gunicorn. A kept-alive connection stays with the worker that accepted it, so one
  worker could serve twelve busy clients while another served eight, and those twelve waited
  half as long again (the benchmark's ``p99`` was twice its median).
- **A short queue per worker** (``worker_connections`` = threads + 2): a worker takes a new
  connection only when it can start on it soon. The rest wait in the kernel's listen queue,
  which every worker accepts from: the next free worker serves the oldest request, whichever
  worker it is. With one request per connection nothing starves behind a full worker.
"""

from __future__ import annotations

import os

THREADS_ENV = "NONGDAI_WEB_THREADS"
QUEUED_PER_WORKER = 2  # accepted connections waiting for a thread, per worker

worker_class = "gthread"
threads = int(os.environ.get(THREADS_ENV, "4"))
keepalive = 0
worker_connections = threads + QUEUED_PER_WORKER

SETTINGS = ("worker_class", "threads", "keepalive", "worker_connections")
"""gunicorn's names of the settings above: a settings file that adds hooks (the decision
benchmark's) copies exactly these, so it never runs with settings production does not have."""
