"""The engine's event bus: what `GET /events` streams (docker-compose and docker-py wait on it).

Every area emits its own events (container create/start/die/destroy..., image tag/delete...,
network create/connect..., volume create/mount...), in Docker's shapes. A bounded history is
kept so `since` can replay recent events; subscribers get live ones through a queue each.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

HISTORY = 1024  # events kept for `since` (dockerd keeps 256)
TYPES = ("container", "image", "network", "volume", "daemon", "builder")


@dataclass(frozen=True)
class Event:
    type: str  # container | image | network | volume | daemon
    action: str  # create, start, die, destroy, tag, connect, ...; "exec_start: sh" for execs
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Docker's event message, with the pre-1.22 fields (status, id, from) docker-py reads."""
        seconds = self.time_nano // 1_000_000_000
        message: dict[str, Any] = {
            "Type": self.type, "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": "local", "time": seconds, "timeNano": self.time_nano,
        }
        if self.type == "container":
            message.update(status=self.action, id=self.actor_id, **{"from": self.attributes.get("image", "")})
        elif self.type == "image":
            message.update(status=self.action, id=self.actor_id)
        return message


class Events:
    """Thread-safe publish/subscribe with a replayable history."""

    def __init__(self, history: int = HISTORY) -> None:
        self._lock = threading.Lock()
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: list[queue.SimpleQueue[Event]] = []

    def emit(self, type_: str, action: str, actor_id: str, **attributes: str) -> Event:
        event = Event(type_, action, actor_id, {k: str(v) for k, v in attributes.items()}, time.time_ns())
        with self._lock:
            self._history.append(event)
            for subscriber in self._subscribers:
                subscriber.put(event)
        return event

    def past(self, since_nano: int, until_nano: int | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self._history
                    if e.time_nano >= since_nano and (until_nano is None or e.time_nano <= until_nano)]

    def subscribe(self) -> Subscription:
        sub: queue.SimpleQueue[Event] = queue.SimpleQueue()
        with self._lock:
            self._subscribers.append(sub)
        return Subscription(self, sub)

    def _unsubscribe(self, sub: queue.SimpleQueue[Event]) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)


class Subscription:
    """Live events from the moment of subscribing; close() (or the with block) ends it."""

    def __init__(self, events: Events, sub: queue.SimpleQueue[Event]) -> None:
        self._events, self._queue = events, sub

    def next(self, timeout: float) -> Event | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> Iterator[Event]:
        while True:
            try:
                yield self._queue.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self._events._unsubscribe(self._queue)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
