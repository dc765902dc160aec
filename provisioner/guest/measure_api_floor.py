"""The engine API's floor: the median round trip of a trivial request (GET /_ping).

Run as root in a node: `sudo python3 - < measure_api_floor.py`. Prints one JSON line.
A container start needs at least two requests (create, then start), so twice this is
what the engine adds to `crun run` before it does any work of its own.
"""

import json
import socket
import statistics
import time

SOCKET = "/run/lab-agent/engine.sock"
WARM_UP, RUNS = 5, 50


def ping() -> None:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(SOCKET)
        conn.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        while conn.recv(65536):
            pass


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
