"""Exec endpoints: create a session in a running container, start it (attached or not), inspect it."""

from __future__ import annotations

import threading

from ..containers.logs import frame
from ..errors import BadParameter, Conflict
from ..interface import EngineInterface
from .http import Request, Response, json_response
from .router import Route
from .streams import stream_type


def exec_create(engine: EngineInterface, req: Request, ref: str) -> Response:
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


def exec_start(engine: EngineInterface, req: Request, eid: str) -> Response | None:
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
    writer = req.hijack(stream_type(req))
    engine.execs.start(session.id, lambda stream, data: writer.write(frame(stream, data)))
    return None


def exec_inspect(engine: EngineInterface, req: Request, eid: str) -> Response:
    s = engine.execs.get(eid)
    return json_response({
        "ID": s.id, "Running": s.running, "ExitCode": s.exit_code, "ContainerID": s.container_id,
        "ProcessConfig": {"tty": False, "entrypoint": s.cmd[0], "arguments": s.cmd[1:],
                          "privileged": False, "user": ""},
        "OpenStdin": False, "OpenStdout": True, "OpenStderr": True, "CanRemove": False,
        "DetachKeys": "", "Pid": s.pid,
    })


ROUTES: list[Route] = [
    ("POST", "/containers/{ref}/exec", exec_create),
    ("POST", "/exec/{eid}/start", exec_start),
    ("GET", "/exec/{eid}/json", exec_inspect),
]
