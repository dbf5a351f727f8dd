"""The same server on Ray Serve: one replica per CPU you ask for, each holding the bundle loaded once and
running the app of serve.oip (its own batcher included) behind Ray Serve's HTTP proxy.

`seq2seq-edge serve BUNDLE --engine ray --replicas N [--address ray://HOST:10001]` starts a local Ray (or joins
the cluster at ``--address`` / RAY_ADDRESS, where the bundle path must exist on every node) and serves until
SIGINT or SIGTERM. Ray is imported only here (``pip install "seq2seq-edge[serve,scale]" "ray[serve]"``).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from ..runtime.errors import InputError

__all__ = ["serve_on_ray", "deployment"]


def _serve():
    try:
        import ray
        from ray import serve
    except ImportError:
        raise InputError('--engine ray needs Ray Serve: pip install "ray[serve]>=2.60,<3"') from None
    return ray, serve


def deployment(bundle: str | Path, *, replicas: int = 2, max_ongoing_requests: int = 1024, **options):
    """A bound Ray Serve application of ``bundle``: ``replicas`` replicas of one CPU each, each building
    ``create_app(bundle, **options)`` when it starts (so a broken bundle fails on the replica too)."""
    _, serve = _serve()
    bundle = str(Path(bundle).resolve())

    @serve.ingress()
    class Seq2SeqEdge:
        def __init__(self, bundle: str, options: dict) -> None:
            self.bundle, self.options = bundle, options

        def __serve_build_asgi_app__(self):
            from .oip import create_app

            return create_app(self.bundle, **self.options)

    # max_ongoing_requests: Ray's default (5) would cap what one replica's batcher ever sees at 5 requests.
    wrapped = serve.deployment(Seq2SeqEdge, name="seq2seq-edge", num_replicas=replicas,
                               ray_actor_options={"num_cpus": 1}, max_ongoing_requests=max_ongoing_requests)
    return wrapped.bind(bundle, options)


def serve_on_ray(bundle: str | Path, *, replicas: int = 2, host: str = "127.0.0.1", port: int = 8000,
                 address: str | None = None, ready: Callable[[int], Any] | None = None, **options) -> None:
    """Serve ``bundle`` on Ray Serve until SIGINT or SIGTERM; ``options`` go to create_app."""
    from .oip import create_app

    if not isinstance(replicas, int) or replicas < 1:
        raise InputError(f"replicas must be a positive integer, got {replicas!r}")
    create_app(bundle, **options)  # the bundle and the options are checked here, before Ray starts
    ray, serve = _serve()
    import logging

    for name in ("ray", "ray.serve"):  # Ray Serve's INFO lines (started, ready at ...): ours says it once
        logging.getLogger(name).setLevel(logging.WARNING)
    joining = address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, num_cpus=None if joining else replicas + 1, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    try:
        serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
        serve.run(deployment(bundle, replicas=replicas, **options), name="seq2seq-edge", route_prefix="/",
                  logging_config={"log_level": "WARNING", "enable_access_log": False})
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if ready is not None:
            ready(port)
        stop.wait()
    finally:
        try:
            if joining:  # a shared cluster: remove our application only
                serve.delete("seq2seq-edge")
            else:
                serve.shutdown()  # Ray Serve drains its replicas' ongoing requests
        finally:
            ray.shutdown()
