"""GET /events: the engine's event bus as newline-delimited JSON (docker-compose waits on it).

`since` replays the kept history from then (`until` alone replays all of it up to then);
`until` ends the stream at that time (at once after the replay when it is already past);
without `until` the stream runs until the client goes. Filters are Docker's: type, event,
container, image, label, network, volume, daemon.
"""

from __future__ import annotations

import json
import time

from ..events import Event
from ..interface import EngineInterface
from .filters import Filters, parse_filters
from .http import Request
from .router import Route
from .timestamps import parse_time

FILTER_KEYS = ("type", "event", "container", "image", "label", "network", "volume", "daemon")
TICK = 0.5  # seconds between looks at the client and the clock while no event comes


def _strip_tag(ref: str) -> str:
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def _named(f: Filters, key: str, e: Event) -> bool:
    """container=, network=, volume=, daemon=: a prefix of the actor's id, or its name."""
    if key not in f:
        return True
    name = e.attributes.get("name", "")
    return e.type == key and any(e.actor_id.startswith(v) or v == name for v in f.get(key))


def _image(f: Filters, e: Event) -> bool:
    if "image" not in f:
        return True
    name = e.attributes.get("name" if e.type == "image" else "image", "")
    have = {e.actor_id, name, _strip_tag(e.actor_id), _strip_tag(name)} - {""}
    return any(v in have for v in f.get("image"))


def matches(f: Filters, e: Event) -> bool:
    if not f.any_of("type", [e.type]):
        return False
    if "event" in f and not any(e.action == v or e.action.startswith(f"{v}:") for v in f.get("event")):
        return False
    if not all(_named(f, key, e) for key in ("container", "network", "volume", "daemon")):
        return False
    return _image(f, e) and f.labels_match(e.attributes)


def events(engine: EngineInterface, req: Request) -> None:
    f = parse_filters(req.arg("filters"), FILTER_KEYS)
    now = time.time()
    since = parse_time(req.arg("since"), "since", now) if req.arg("since") else None
    until = parse_time(req.arg("until"), "until", now) if req.arg("until") else None
    until_nano = int(until * 1e9) if until is not None else None
    with engine.events.subscribe() as live:  # before the replay, so that nothing falls between
        # either bound asks for the kept history (until alone: all of it up to then), as dockerd's
        replay = since is not None or until is not None
        past = engine.events.past(int((since or 0) * 1e9), until_nano) if replay else []
        replayed = {id(e) for e in past}
        writer = req.stream("application/json")
        for old in past:
            if matches(f, old):
                writer.write(json.dumps(old.to_dict()).encode() + b"\n")
        while until is None or time.time() < until:
            wait = TICK if until is None else max(0.0, min(TICK, until - time.time()))
            e = live.next(wait)
            if e is None:
                if req.client_gone():
                    return
                continue
            if id(e) in replayed or (until_nano is not None and e.time_nano > until_nano):
                continue
            if matches(f, e):
                writer.write(json.dumps(e.to_dict()).encode() + b"\n")
        writer.close()


ROUTES: list[Route] = [
    ("GET", "/events", events),
]
