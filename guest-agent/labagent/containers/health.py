"""Healthchecks: Config.Healthcheck (or the image's HEALTHCHECK) probed as an exec in the container.

A thread per running container runs the probe every Interval through Execs (the container's
own process settings), kills it after Timeout, and keeps Docker's State.Health: the status,
the failing streak and the last five results. A change of status is a `health_status` event.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadParameter, EngineError
from ..events import Events
from ..fsutil import rfc3339
from .execs import Execs
from .model import Container, Healthcheck
from .store import ContainerStore

log = logging.getLogger(__name__)
SECOND = 1_000_000_000
DEFAULT_INTERVAL = DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # dockerd refuses durations under 1 ms
MAX_OUTPUT = 4096  # bytes of a probe's output kept, as dockerd keeps
MAX_LOG = 5
INT64_MAX = (1 << 63) - 1  # Go's int64: dockerd refuses larger numbers when it decodes the body
KINDS = ("CMD", "CMD-SHELL", "NONE")


@dataclass(frozen=True)
class Check:
    """A healthcheck with Docker's defaults filled in, durations in seconds."""

    argv: list[str]
    interval: float
    timeout: float
    start_period: float
    retries: int


def parse_healthcheck(value: Any) -> Healthcheck | None:
    """Config.Healthcheck with dockerd's 400s; None when not given (the image's applies)."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise BadParameter("Healthcheck must be an object")
    unknown = set(value) - {"Test", "Interval", "Timeout", "StartPeriod", "Retries"}
    for name in sorted(unknown):
        if value[name] not in (None, 0):
            raise BadParameter(f"Healthcheck.{name} is not supported by this engine (API v1.43)")
    test = value.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise BadParameter("Healthcheck.Test must be a list of strings")
    if test and (test[0] not in KINDS or (test[0] != "NONE" and len(test) < 2)
                 or (test[0] == "CMD-SHELL" and len(test) != 2)):
        raise BadParameter(f"Healthcheck.Test: want [\"CMD\", ...], [\"CMD-SHELL\", cmd] or [\"NONE\"], "
                           f"not {str(test)[:60]}")
    durations = {}
    for name in ("Interval", "Timeout", "StartPeriod"):
        nanos = value.get(name) or 0
        if isinstance(nanos, bool) or not isinstance(nanos, int) or nanos > INT64_MAX:
            raise BadParameter(f"Healthcheck.{name} must be an integer of nanoseconds (int64)")
        if nanos != 0 and nanos < MIN_DURATION:
            raise BadParameter(f"{name} in Healthcheck cannot be less than 1ms")
        durations[name] = nanos
    retries = value.get("Retries") or 0
    if isinstance(retries, bool) or not isinstance(retries, int) or retries > INT64_MAX:
        raise BadParameter("Healthcheck.Retries must be an integer (int64)")
    if retries < 0:
        raise BadParameter("Retries in Healthcheck cannot be negative")
    return Healthcheck(list(test), durations["Interval"], durations["Timeout"],
                       durations["StartPeriod"], retries)


def from_image(config: dict[str, Any]) -> Healthcheck | None:
    """The image's HEALTHCHECK (config.Healthcheck), if the image records a valid one."""
    raw = (config.get("config") or {}).get("Healthcheck")
    try:
        return parse_healthcheck(raw)
    except BadParameter:
        log.warning("ignoring the image's malformed Healthcheck %r", str(raw)[:80])
        return None


def effective(own: Healthcheck | None, image: Healthcheck | None) -> Healthcheck | None:
    """The container's settings over the image's, field by field, as dockerd merges them."""
    if own is None:
        return image
    if own.test[:1] == ["NONE"]:
        return own
    base = image or Healthcheck()
    if not own.test and not base.test:
        return None
    return Healthcheck(own.test or base.test, own.interval or base.interval, own.timeout or base.timeout,
                       own.start_period or base.start_period, own.retries or base.retries)


def to_check(hc: Healthcheck | None) -> Check | None:
    if hc is None or not hc.test or hc.test[0] == "NONE":
        return None
    argv = ["/bin/sh", "-c", hc.test[1]] if hc.test[0] == "CMD-SHELL" else hc.test[1:]
    def seconds(nanos: int) -> float:
        return min(nanos / SECOND, threading.TIMEOUT_MAX)  # an Event.wait() longer than that fails

    return Check(argv, seconds(hc.interval or DEFAULT_INTERVAL), seconds(hc.timeout or DEFAULT_TIMEOUT),
                 seconds(hc.start_period), hc.retries or DEFAULT_RETRIES)


def to_api(hc: Healthcheck | None) -> dict[str, Any] | None:
    if hc is None:
        return None
    return {"Test": hc.test, "Interval": hc.interval, "Timeout": hc.timeout,
            "StartPeriod": hc.start_period, "Retries": hc.retries}


@dataclass(frozen=True)
class Result:
    start: str
    end: str
    exit_code: int
    output: str

    def to_dict(self) -> dict[str, Any]:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code, "Output": self.output}


def record(state: Any, result: Result, check: Check, since_start: float) -> bool:
    """Fold one probe's result into the state as dockerd does; True when the status changed."""
    before = state.health
    if result.exit_code == 0:
        state.failing_streak = 0
        state.health = "healthy"
    elif not (state.health == "starting" and since_start < check.start_period):
        # failures while the start period runs do not count
        state.failing_streak += 1
        if state.failing_streak >= check.retries:
            state.health = "unhealthy"
    state.health_log = [*state.health_log, result.to_dict()][-MAX_LOG:]
    return bool(state.health != before)


def kill_tree(pid: int) -> None:
    """SIGKILL a probe and everything it started (crun exec's child runs in the container)."""
    pids, seen = [pid], []
    while pids:
        current = pids.pop()
        seen.append(current)
        with contextlib.suppress(OSError, ValueError):
            for task in os.listdir(f"/proc/{current}/task"):
                text = Path(f"/proc/{current}/task/{task}/children").read_text()
                pids.extend(int(p) for p in text.split())
    for victim in reversed(seen):
        with contextlib.suppress(OSError):
            os.kill(victim, signal.SIGKILL)


class Health:
    """The probe threads, one per running container that has a healthcheck."""

    def __init__(self, store: ContainerStore, execs: Execs) -> None:
        self.store, self.execs = store, execs
        self.events = Events()  # the engine's bus replaces this one
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}

    def watch(self, container: Container, check: Check | None) -> None:
        """Start probing (status "starting"); a container without a check gets no Health."""
        self.stop(container.id)
        if check is None:
            return
        done = threading.Event()
        with self._lock:
            self._stops[container.id] = done
        thread = threading.Thread(target=self._loop, args=(container, check, done),
                                  name=f"health-{container.id[:12]}", daemon=True)
        thread.start()

    def stop(self, cid: str) -> None:
        with self._lock:
            done = self._stops.pop(cid, None)
        if done is not None:
            done.set()

    def close(self) -> None:
        with self._lock:
            stops, self._stops = list(self._stops.values()), {}
        for done in stops:
            done.set()

    def _loop(self, container: Container, check: Check, done: threading.Event) -> None:
        run = container.state.exits
        begun = time.monotonic()
        while not done.wait(check.interval):
            if not container.running or container.state.exits != run or not self.store.exists(container.id):
                return
            if container.state.paused:
                continue
            try:
                result = self.probe(container.id, check)
            except Exception as exc:  # the container went away under the probe
                if not container.running:
                    return
                result = Result(rfc3339(), rfc3339(), -1, str(exc)[:MAX_OUTPUT])
            if done.is_set() or container.state.exits != run:
                return
            with self.store.changed:
                changed = record(container.state, result, check, time.monotonic() - begun)
                with contextlib.suppress(OSError):
                    self.store.save(container, durable=False)
            if changed:
                self.events.emit("container", f"health_status: {container.state.health}", container.id,
                                 **{**container.spec.labels, "name": container.name,
                                    "image": container.spec.image})

    def probe(self, cid: str, check: Check) -> Result:
        """One run of the check through Execs; killed (exit -1) when it outlives the timeout."""
        start = rfc3339()
        session = self.execs.create(cid, check.argv, [])
        output = bytearray()
        failure: list[BaseException] = []

        def sink(_stream: int, data: bytes) -> None:
            output.extend(data[:MAX_OUTPUT - len(output)])

        def run() -> None:
            try:
                self.execs.start(session.id, sink)
            except BaseException as exc:  # reported below as the probe's output
                failure.append(exc)

        worker = threading.Thread(target=run, name=f"probe-{cid[:12]}", daemon=True)
        worker.start()
        worker.join(check.timeout)
        timed_out = worker.is_alive()
        if timed_out:
            if session.pid:
                kill_tree(session.pid)
            worker.join(5)
        self.execs.forget(session.id)
        text = output.decode(errors="replace")
        if timed_out:
            return Result(start, rfc3339(), -1, f"Health check exceeded timeout ({_seconds(check.timeout)})")
        if failure:
            error = failure[0]
            message = error.message if isinstance(error, EngineError) else str(error)
            return Result(start, rfc3339(), -1, message[:MAX_OUTPUT])
        code = session.exit_code if session.exit_code is not None else -1
        return Result(start, rfc3339(), code, text)


def _seconds(value: float) -> str:
    return f"{value:g}s"
