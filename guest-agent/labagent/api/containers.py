"""Container endpoints: list, create, inspect, start/stop/restart/kill, wait, remove, prune, logs,
attach, resize."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator

from ..containers import detachkeys
from ..containers.attachinput import AttachInput
from ..containers.logs import Entry
from ..containers.model import Container, check_name
from ..containers.stdio import StdinPipe, send_size
from ..errors import BadParameter, Conflict, EngineError
from ..fsutil import parse_rfc3339, tree_size
from ..interface import EngineInterface
from ..runtime.crun import parse_signal
from . import listing, views
from .createbody import spec_from_body
from .filters import Filters, parse_filters
from .hijack import HijackedInput, wait_for_head_read
from .http import Request, Response, json_response
from .router import Route
from .stdiobody import MAX_SIZE
from .streams import RAW, batches, entry_bytes, stream_type
from .timestamps import parse_time

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def list_containers(engine: EngineInterface, req: Request) -> Response:
    """Newest first; a status filter or a limit lists stopped containers too, as dockerd does."""
    match, stopped_too = listing.build(engine, req.arg("filters"))
    limit = req.int_arg("limit")
    everything = req.flag("all") or stopped_too or (limit or 0) > 0
    shown = [c for c in engine.containers.all() if everything or c.running or c.state.status == "restarting"]
    items = [c for c in shown if match(c)]  # a container waiting to restart is listed as dockerd lists it
    if limit is not None and limit > 0:
        items = items[:limit]
    summaries = [views.container_summary(c, engine.networks.settings_of(c)) for c in items]
    if req.flag("size"):
        for c, summary in zip(items, summaries, strict=True):
            summary["SizeRw"] = tree_size(engine.containers.bundle(c.id) / "upper")
            summary["SizeRootFs"] = summary["SizeRw"] + _image_size(engine, c)
    return json_response(summaries)


def _image_size(engine: EngineInterface, c: Container) -> int:
    try:
        return engine.images.resolve(c.spec.image_id).size
    except EngineError:
        return 0


def create(engine: EngineInterface, req: Request) -> Response:
    name = req.arg("name")
    if name:
        name = check_name(name)
    spec = spec_from_body(req.json())
    container = engine.lifecycle.create(name, spec)
    return json_response({"Id": container.id, "Warnings": list(spec.options.get("Warnings") or [])}, 201)


def inspect(engine: EngineInterface, req: Request, ref: str) -> Response:
    c = engine.containers.get(ref)
    try:
        image = engine.images.resolve(c.spec.image_id)
        lowers, config = [str(p) for p in engine.images.layer_dirs(image)], image.config
    except EngineError:  # the image was force-removed; the record still stands
        lowers, config = [], {}
    return json_response(views.container_inspect(c, str(engine.containers.bundle(c.id)), lowers, config,
                                                 engine.volumes.data_dir, engine.networks.settings_of(c)))


def start(engine: EngineInterface, req: Request, ref: str) -> Response:
    engine.lifecycle.start(ref)
    return Response(204)


def _stop_timeout(req: Request) -> float | None:
    """`t`, else None: the container's StopTimeout (or 10 s) applies."""
    t = req.int_arg("t")
    return None if t is None else float(t)


def stop(engine: EngineInterface, req: Request, ref: str) -> Response:
    engine.lifecycle.stop(ref, _stop_timeout(req))
    return Response(204)


def restart(engine: EngineInterface, req: Request, ref: str) -> Response:
    engine.lifecycle.restart(ref, _stop_timeout(req))
    return Response(204)


def kill_signal(value: str) -> int:
    """A signal by name (SIGHUP, HUP, hup) or number, 1 to SIGRTMAX; anything else is a 400."""
    sig = parse_signal(value)
    if not 0 < sig <= signal.SIGRTMAX:
        raise BadParameter(f"Invalid signal: {value}")
    return sig


def kill(engine: EngineInterface, req: Request, ref: str) -> Response:
    sig = kill_signal(req.arg("signal"))
    c = engine.containers.get(ref)
    if not c.running:
        raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
    engine.lifecycle.kill(c.id, sig)
    engine.events.emit("container", "kill", c.id, name=c.name, image=c.spec.image, signal=str(sig))
    return Response(204)


def wait(engine: EngineInterface, req: Request, ref: str) -> None:
    condition = req.arg("condition") or "not-running"
    if condition not in WAIT_CONDITIONS:
        raise BadParameter(f"invalid condition: {condition!r}")
    container = engine.containers.get(ref)
    writer = req.stream("application/json")  # headers now: the wait is registered
    done = engine.lifecycle.wait(container, condition, req.client_gone)
    error = {"Message": done.state.error} if done.state.error else None
    writer.write(json.dumps({"StatusCode": done.state.exit_code, "Error": error}).encode() + b"\n")
    writer.close()


def remove(engine: EngineInterface, req: Request, ref: str) -> Response:
    engine.remove_container(ref, force=req.flag("force"), volumes=req.flag("v"))
    return Response(204)


def logs(engine: EngineInterface, req: Request, ref: str) -> None:
    """Streamed from disk (a tail read from the end of the file), so no log is held whole."""
    c = engine.containers.get(ref)
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    if not (stdout or stderr):
        raise BadParameter("You must choose at least one stream")
    ts = req.flag("timestamps")
    since = parse_time(req.arg("since"), "since") if req.arg("since") else 0.0
    until = parse_time(req.arg("until"), "until") if req.arg("until") else 0.0
    tail = req.int_arg("tail")
    logfile = engine.containers.logfile(c.id)
    end = logfile.end()  # the snapshot the past output is read up to, as one read() was
    cursor = logfile.cursor(logfile.tail_start(tail, since, end) if tail is not None and tail >= 0 else 0)
    encode = _entry_bytes(c.spec.tty)
    writer = req.stream(RAW if c.spec.tty else stream_type(req))
    past = _until(cursor.entries(since, end), until)
    for data in batches(encode(e, stdout, stderr, ts) for e in past):
        writer.write(data)
    if req.flag("follow") and not (until and until <= time.time()):
        for entry in _until(logfile.follow(cursor.offset, lambda: not c.running, req.client_gone), until):
            writer.write(encode(entry, stdout, stderr, ts))
    writer.close()


def _until(entries: Iterator[Entry], until: float) -> Iterator[Entry]:
    """The entries written at or before `until` (0: all), as dockerd's logs?until= reads them."""
    for entry in entries:
        if until and parse_rfc3339(entry.time) > until:
            return
        yield entry


def _entry_bytes(tty: bool) -> Callable[[Entry, bool, bool, bool], bytes]:
    """Frames, or for a TTY container its raw bytes: a terminal has one stream, as in Docker."""
    if not tty:
        return entry_bytes

    def raw(entry: Entry, stdout: bool, stderr: bool, timestamps: bool) -> bytes:
        if not (stdout if entry.stream == 1 else stderr):
            return b""
        return (entry.time.encode() + b" " if timestamps else b"") + entry.data

    return raw


def attach(engine: EngineInterface, req: Request, ref: str) -> None:
    """Past output if logs=1, then live output until the next exit; with stdin=1, the client's input.

    Input reaches the container only if it was created with OpenStdin, as in Docker; what
    its end means (and the detach keys of a TTY) is attachinput.py's.
    """
    c = engine.containers.get(ref)
    if c.running and c.state.paused:
        raise Conflict("You cannot attach to a paused container, unpause it first")
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    keys = detachkeys.parse(req.arg("detachKeys"), "detachKeys") if req.arg("detachKeys") else detachkeys.DEFAULT
    encode = _entry_bytes(c.spec.tty)
    logfile = engine.containers.logfile(c.id)
    run = c.state.exits
    end = logfile.end()  # before the client may send: what its input makes comes after this
    pipe = _stdin_pipe(engine, c) if req.flag("stdin") and c.spec.open_stdin else None
    try:
        writer = req.hijack(RAW if c.spec.tty else stream_type(req))
    except BaseException:
        if pipe is not None:
            pipe.close()
        raise
    engine.events.emit("container", "attach", c.id, name=c.name, image=c.spec.image)
    feed: AttachInput | None = None
    if pipe is not None:
        feed = AttachInput(HijackedInput(req), pipe, c.spec.tty, c.spec.stdin_once, keys, logfile.poke,
                           lambda: engine.events.emit("container", "detach", c.id, name=c.name,
                                                      image=c.spec.image))
        feed.start()
    first = [True]

    def send(data: bytes) -> None:
        if data and first[0]:
            first[0] = False
            wait_for_head_read(req.handler.connection)
        writer.write(data)

    try:
        cursor = logfile.cursor(0 if req.flag("logs") else end)
        for data in batches(encode(e, stdout, stderr, False) for e in cursor.entries(until=end)):
            send(data)
        if req.flag("stream"):
            def gone() -> bool:
                return (feed is not None and feed.ended) or req.client_gone()
            for entry in logfile.follow(cursor.offset, lambda: c.state.exits != run, gone):
                if feed is not None and feed.ended:
                    break
                send(encode(entry, stdout, stderr, False))
    except OSError:
        pass  # the client went (or detached) while output was on its way
    finally:
        if feed is not None:
            feed.stop()
        if pipe is not None:
            pipe.close()


def _stdin_pipe(engine: EngineInterface, c: Container) -> StdinPipe:
    try:
        return StdinPipe(engine.containers.bundle(c.id))
    except OSError as exc:
        raise EngineError(f"cannot open the stdin of container {c.id}: {exc.strerror or exc}") from None


def resize(engine: EngineInterface, req: Request, ref: str) -> Response:
    """A TTY container's window size, through its relay; a container without a TTY has none to size."""
    height, width = _dimension(req, "h"), _dimension(req, "w")
    c = engine.containers.get(ref)
    if not c.running:
        raise Conflict(f"Container {c.id} is not running")
    if c.spec.tty and send_size(engine.containers.bundle(c.id), height, width):
        engine.events.emit("container", "resize", c.id, name=c.name, image=c.spec.image,
                           height=str(height), width=str(width))
    return Response(200, b"", content_type="text/plain")


def _dimension(req: Request, name: str) -> int:
    text = req.arg(name)
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > MAX_SIZE:
        raise BadParameter(f"{name}: {text[:32]!r} is not a number in 0-{MAX_SIZE}")
    return int(text)


def prune(engine: EngineInterface, req: Request) -> Response:
    """Remove stopped containers (until, label, label! filters); what it freed, as dockerd says."""
    filters = parse_filters(req.arg("filters"), ("until", "label", "label!"))
    until_text = filters.one("until")
    until = parse_time(until_text, "until") if until_text else None
    deleted, reclaimed = [], 0
    for c in engine.containers.all():
        if c.running or c.state.status == "restarting" or c.id in engine.lifecycle.starting_ids():
            continue
        if until is not None and parse_rfc3339(c.created) >= until:
            continue
        if not filters.labels_match(c.spec.labels) or any(
                Filters({"label": [one]}).labels_match(c.spec.labels) for one in filters.get("label!")):
            continue
        size = tree_size(engine.containers.bundle(c.id) / "upper")
        try:
            engine.remove_container(c.id)
        except EngineError:  # started or removed meanwhile
            continue
        deleted.append(c.id)
        reclaimed += size
    engine.events.emit("container", "prune", "", reclaimed=str(reclaimed))
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


ROUTES: list[Route] = [
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/json", list_containers),
    ("POST", "/containers/create", create),
    ("GET", "/containers/{ref}/json", inspect),
    ("POST", "/containers/{ref}/start", start),
    ("POST", "/containers/{ref}/stop", stop),
    ("POST", "/containers/{ref}/restart", restart),
    ("POST", "/containers/{ref}/kill", kill),
    ("POST", "/containers/{ref}/wait", wait),
    ("DELETE", "/containers/{ref}", remove),
    ("GET", "/containers/{ref}/logs", logs),
    ("POST", "/containers/{ref}/attach", attach),
    ("POST", "/containers/{ref}/resize", resize),
]
