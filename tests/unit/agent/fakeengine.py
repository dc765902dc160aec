"""Run the real engine server (labagent.server.serve) with fake seams, for the docker CLI.

    python tests/unit/agent/fakeengine.py DIR     # serves on DIR/engine.sock until SIGTERM

The tests start it as a subprocess, so the docker CLI and docker-py talk to exactly what
`python3 -m labagent.server` serves in a guest, minus crun, cgroups and netns.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import make_seams
from labagent.engine import Engine
from labagent.server import serve


def main(argv: list[str]) -> int:
    base = Path(argv[0])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    engine = Engine(base / "root", make_seams(base / "seams"))
    engine.startup()
    server = serve(base / "run" / "engine.sock", engine)
    server.IDLE_EXIT = 0.5  # idle worker threads leave soon, so a count shows any stuck stream
    signal.signal(signal.SIGTERM, lambda s, f: threading.Thread(target=server.shutdown, daemon=True).start())
    print("ready", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
