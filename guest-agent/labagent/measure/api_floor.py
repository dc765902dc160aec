"""The engine API's floor: the median round trip of a trivial request (GET /_ping).

Run as root in a node: `sudo env PYTHONPATH=$AGENT_DIR python3 -m labagent.measure.api_floor`.
Prints one JSON line. A container start needs at least two requests (create, then start),
so twice this is what the engine adds to `crun run` before it does any work of its own.
Each ping is a connection of its own, as the docker CLI opens one per request, and asks the
engine to close it after the reply, so the engine's thread is free for the next one.
"""

from __future__ import annotations

import json
import statistics
import time

from ..client import ApiError, Client

WARM_UP, RUNS = 5, 50
CLIENT = Client(timeout=60)


def ping() -> None:
    try:
        CLIENT.request("GET", "/_ping", close=True).read()
    except ApiError as exc:
        raise SystemExit(f"GET /_ping: {exc.status} {exc.message}") from None


def main() -> None:
    for _ in range(WARM_UP):
        ping()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        ping()
        times.append(time.perf_counter() - started)
    print(json.dumps({"ping_median_s": statistics.median(times), "ping_min_s": min(times), "runs": RUNS}))


if __name__ == "__main__":
    main()
