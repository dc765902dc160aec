"""The endpoints: thin translations between Docker's HTTP surface and the engine."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any

from ..containers.logs import frame
from ..containers.model import check_name
from ..engine import Engine
from ..errors import BadParameter, Conflict, EngineError
from ..fsutil import rmtree
from ..runtime.crun import parse_signal
from . import views
from .createbody import spec_from_body
from .http import Request, Response, json_response
from .router import route

MUX = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def _stream_type(req: Request) -> str:
    """Docker names the framed stream type from API 1.42 on; older clients expect raw-stream."""
    if req.version and tuple(int(p) for p in req.version.split(".")) < (1, 42):
        return RAW
    return MUX


# system --------------------------------------------------------------------------------
@route("GET", "/_ping")
def ping(engine: Engine, req: Request) -> Response:
    return Response(200, b"OK", "text/plain; charset=utf-8",
                    {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                     "Builder-Version": "1"})


@route("GET", "/version")
def version(engine: Engine, req: Request) -> Response:
    return json_response(views.version())


@route("GET", "/info")
def info(engine: Engine, req: Request) -> Response:
    return json_response(views.info(engine.containers.all(), len(engine.images.images()), str(engine.root)))


# containers ----------------------------------------------------------------------------
@route("GET", "/containers/json")
def list_containers(engine: Engine, req: Request) -> Response:
    items = engine.containers.all() if req.flag("all") else engine.containers.running()
    limit = req.int_arg("limit")
    if limit is not None and limit > 0:
        items = items[:limit]
    return json_response([views.container_summary(c) for c in items])


@route("POST", "/containers/create")
def create(engine: Engine, req: Request) -> Response:
    name = req.arg("name")
    if name:
        name = check_name(name)
    spec = spec_from_body(req.json())
    container = engine.lifecycle.create(name, spec)
    return json_response({"Id": container.id, "Warnings": []}, 201)


@route("GET", "/containers/{ref}/json")
def inspect(engine: Engine, req: Request, ref: str) -> Response:
    c = engine.containers.get(ref)
    try:
        image = engine.images.resolve(c.spec.image_id)
        lowers, config = [str(p) for p in engine.images.layer_dirs(image)], image.config
    except EngineError:  # the image was force-removed; the record still stands
        lowers, config = [], {}
    return json_response(views.container_inspect(c, str(engine.containers.bundle(c.id)), lowers, config))


@route("POST", "/containers/{ref}/start")
def start(engine: Engine, req: Request, ref: str) -> Response:
    engine.lifecycle.start(ref)
    return Response(204)


@route("POST", "/containers/{ref}/stop")
def stop(engine: Engine, req: Request, ref: str) -> Response:
    engine.lifecycle.stop(ref, float(req.int_arg("t", 10) or 0))
    return Response(204)


@route("POST", "/containers/{ref}/restart")
def restart(engine: Engine, req: Request, ref: str) -> Response:
    if engine.containers.get(ref).running:
        engine.lifecycle.stop(ref, float(req.int_arg("t", 10) or 0))
    engine.lifecycle.start(ref)
    return Response(204)


@route("POST", "/containers/{ref}/kill")
def kill(engine: Engine, req: Request, ref: str) -> Response:
    engine.lifecycle.kill(ref, parse_signal(req.arg("signal")))
    return Response(204)


@route("POST", "/containers/{ref}/wait")
def wait(engine: Engine, req: Request, ref: str) -> None:
    condition = req.arg("condition") or "not-running"
    if condition not in WAIT_CONDITIONS:
        raise BadParameter(f"invalid condition: {condition!r}")
    container = engine.containers.get(ref)
    writer = req.stream("application/json")  # headers now: the wait is registered
    done = engine.lifecycle.wait(container, condition, req.client_gone)
    error = {"Message": done.state.error} if done.state.error else None
    writer.write(json.dumps({"StatusCode": done.state.exit_code, "Error": error}).encode() + b"\n")
    writer.close()


@route("DELETE", "/containers/{ref}")
def remove(engine: Engine, req: Request, ref: str) -> Response:
    engine.remove_container(ref, force=req.flag("force"))
    return Response(204)


def _entry_bytes(entry: Any, stdout: bool, stderr: bool, timestamps: bool) -> bytes:
    if (entry.stream == 1 and not stdout) or (entry.stream == 2 and not stderr):
        return b""
    prefix = entry.time.encode() + b" " if timestamps else b""
    return frame(entry.stream, prefix + entry.data)


def _batches(pieces: Iterator[bytes], size: int = 64 << 10) -> Iterator[bytes]:
    """Frames joined into writes of about `size` bytes: a chunk per write, not per line."""
    batch: list[bytes] = []
    held = 0
    for piece in pieces:
        batch.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)


@route("GET", "/containers/{ref}/logs")
def logs(engine: Engine, req: Request, ref: str) -> None:
    """Streamed from disk (a tail read from the end of the file), so no log is held whole."""
    c = engine.containers.get(ref)
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    if not (stdout or stderr):
        raise BadParameter("You must choose at least one stream")
    ts = req.flag("timestamps")
    try:
        since = float(req.arg("since") or 0)
    except ValueError:
        raise BadParameter(f"invalid since: {req.arg('since')!r}") from None
    tail = req.int_arg("tail")
    logfile = engine.containers.logfile(c.id)
    end = logfile.end()  # the snapshot the past output is read up to, as one read() was
    cursor = logfile.cursor(logfile.tail_start(tail, since, end) if tail is not None and tail >= 0 else 0)
    writer = req.stream(_stream_type(req))
    for data in _batches(_entry_bytes(e, stdout, stderr, ts) for e in cursor.entries(since, end)):
        writer.write(data)
    if req.flag("follow"):
        for entry in logfile.follow(cursor.offset, lambda: not c.running, req.client_gone):
            writer.write(_entry_bytes(entry, stdout, stderr, ts))
    writer.close()


@route("POST", "/containers/{ref}/attach")
def attach(engine: Engine, req: Request, ref: str) -> None:
    """Output only (no stdin): past output if logs=1, then live output until the next exit."""
    c = engine.containers.get(ref)
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    logfile = engine.containers.logfile(c.id)
    run = c.state.exits
    writer = req.hijack(_stream_type(req))
    end = logfile.end()
    cursor = logfile.cursor(0 if req.flag("logs") else end)
    for data in _batches(_entry_bytes(e, stdout, stderr, False) for e in cursor.entries(until=end)):
        writer.write(data)
    if req.flag("stream"):
        for entry in logfile.follow(cursor.offset, lambda: c.state.exits != run, req.client_gone):
            writer.write(_entry_bytes(entry, stdout, stderr, False))


# exec ----------------------------------------------------------------------------------
@route("POST", "/containers/{ref}/exec")
def exec_create(engine: Engine, req: Request, ref: str) -> Response:
    body = req.json()
    if body.get("Tty"):
        raise BadParameter("TTY exec sessions are not supported by this engine (drop -t)")
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if body.get("Privileged"):
        raise BadParameter("Privileged: privileged exec sessions are not supported by this engine")
    user = body.get("User") or ""
    if not isinstance(user, str):
        raise BadParameter("User must be a string")
    session = engine.execs.create(ref, cmd or [], list(body.get("Env") or []), body.get("WorkingDir") or "", user)
    return json_response({"Id": session.id}, 201)


@route("POST", "/exec/{eid}/start")
def exec_start(engine: Engine, req: Request, eid: str) -> Response | None:
    body = req.json()
    if body.get("Tty"):
        raise BadParameter("TTY exec sessions are not supported by this engine")
    session = engine.execs.get(eid)
    if session.started:
        raise Conflict(f"Exec {eid} has already been started")
    if not engine.containers.get(session.container_id).running:
        raise Conflict(f"Container {session.container_id} is not running")
    if body.get("Detach"):
        threading.Thread(target=engine.execs.start, args=(session.id, lambda s, d: None),
                         daemon=True).start()
        return Response(200, b"")
    writer = req.hijack(_stream_type(req))
    engine.execs.start(session.id, lambda stream, data: writer.write(frame(stream, data)))
    return None


@route("GET", "/exec/{eid}/json")
def exec_inspect(engine: Engine, req: Request, eid: str) -> Response:
    s = engine.execs.get(eid)
    return json_response({
        "ID": s.id, "Running": s.running, "ExitCode": s.exit_code, "ContainerID": s.container_id,
        "ProcessConfig": {"tty": False, "entrypoint": s.cmd[0], "arguments": s.cmd[1:],
                          "privileged": False, "user": ""},
        "OpenStdin": False, "OpenStdout": True, "OpenStderr": True, "CanRemove": False,
        "DetachKeys": "", "Pid": s.pid,
    })


# images --------------------------------------------------------------------------------
@route("GET", "/images/json")
def list_images(engine: Engine, req: Request) -> Response:
    users: dict[str, int] = {}
    for c in engine.containers.all():
        users[c.spec.image_id] = users.get(c.spec.image_id, 0) + 1
    return json_response([views.image_summary(i, users.get(i.id, 0)) for i in engine.images.images()])


@route("POST", "/images/load")
def load(engine: Engine, req: Request) -> Response:
    tmp = engine.images.tmp / f"load-{secrets.token_hex(8)}.tar"
    try:
        with open(tmp, "wb") as out:
            for chunk in req.body_chunks():
                out.write(chunk)
        lines = engine.load(tmp)
    finally:
        rmtree(tmp)
    body = b"".join(json.dumps({"stream": line + "\n"}).encode() + b"\n" for line in lines)
    return Response(200, body, "application/json")


@route("POST", "/images/create")
def pull(engine: Engine, req: Request) -> Response:
    name = req.arg("fromImage") or "image"
    return json_response({"message": f"cannot pull {name}: this lab node reaches no registry. "
                          "Load images with `docker load` (or `labctl load -i FILE`), "
                          "or send one from the host with `lab image push LAB NODE FILE`."}, 404)


@route("GET", "/images/{name*}/json")
def image_inspect(engine: Engine, req: Request, name: str) -> Response:
    image = engine.images.resolve(name)
    return json_response(views.image_inspect(image, [str(p) for p in engine.images.layer_dirs(image)]))


@route("DELETE", "/images/{name*}")
def image_remove(engine: Engine, req: Request, name: str) -> Response:
    return json_response(engine.remove_image(name, force=req.flag("force")))
from . import buildroute  # noqa: E402, F401  (registers POST /build)
