"""`python3 -m labagent.server`: the engine daemon on a root-only unix socket."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from . import contract
from .api.http import Handler, Request, Response, Server
from .api.limits import GiB, Limits
from .api.router import Router
from .engine import Engine, Seams
from .notify import Notifier
from .runtime import mountns
from .runtime.crun import Runtime

log = logging.getLogger("labagent")
START_MODULES = ("overlay", "veth", "nft_ct", "nft_masq", "nft_nat", "nft_fib_ipv4")


@functools.cache
def api_router() -> Router:
    """The router over every endpoint's table, built on first use (a request, or the warm-up).

    Importing the endpoints costs start-up time under TCG, so it happens after READY.
    """
    from .api.tables import router

    return router()


def dispatch(handler: Handler) -> tuple[Request | None, Response | None]:
    return api_router().dispatch(handler)


def serve(socket_path: Path, engine: Engine, limits: Limits | None = None) -> Server:
    """Bind the socket with mode 0600 (no window where others could connect)."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(socket_path.parent, 0o700 if socket_path.parent != Path("/run") else 0o755)
    if socket_path.exists() or socket_path.is_symlink():
        socket_path.unlink()
    old = os.umask(0o177)
    try:
        server = Server(str(socket_path), engine, dispatch, limits)
    finally:
        os.umask(old)
    os.chmod(socket_path, 0o600)
    return server


def _warm_up(engine: Engine) -> None:
    """After READY: what the first requests would otherwise wait for.

    The endpoints' imports, the kernel modules a first container start needs (the
    bridge and nf_tables ones were autoloaded by the start-up itself), and the pool of
    ready-made network namespaces.
    """
    api_router()
    try:
        subprocess.run(["modprobe", "-a", *START_MODULES], check=False, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("cannot preload %s: %s", START_MODULES, exc)
    engine.warm()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labagent.server", description=__doc__)
    parser.add_argument("--socket", default=contract.SOCKET, type=Path)
    parser.add_argument("--root", default=contract.STATE_ROOT, type=Path)
    parser.add_argument("--crun", default="crun")
    parser.add_argument("--crun-root", default=contract.CRUN_ROOT, type=Path)
    parser.add_argument("--max-connections", type=int, default=Limits.max_connections,
                        help="connections served at once; more get a 503 (default %(default)s)")
    parser.add_argument("--max-upload-gib", type=float, default=Limits.max_upload / GiB,
                        help="largest docker load or build context, in GiB (default %(default)s)")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    if args.max_connections < 1 or args.max_upload_gib <= 0:
        parser.error("--max-connections and --max-upload-gib must be positive")
    limits = Limits(max_connections=args.max_connections, max_upload=int(args.max_upload_gib * GiB))
    notifier = Notifier.from_environ()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        mountns.enter()  # first: it needs the process to have one thread
    except OSError as exc:
        log.warning("mounting in the node's own namespace (slower starts): %s", exc)
    engine = Engine(args.root, Seams(runtime=Runtime(args.crun, args.crun_root)))
    engine.startup()
    server = serve(args.socket, engine, limits)  # bound and listening: clients queue from here on

    def stop(signum: int, frame: object) -> None:
        log.info("signal %d: stopping the API (containers keep running)", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving the engine API on %s (root %s)", args.socket, args.root)
    notifier.send("READY=1")
    threading.Thread(target=_warm_up, args=(engine,), name="warm-up", daemon=True).start()
    server.serve_forever()
    server.server_close()
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
