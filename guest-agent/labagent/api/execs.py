"""Exec endpoints: create a session in a running container, start it (attached or not), resize
its TTY, inspect it.

Field names are matched as Go's JSON decoder matches them, whatever their case: docker-py
sends `detachKeys`, the CLI `DetachKeys`. The start body's Tty decides the framing (raw or
multiplexed), the create body's Tty whether the process gets a terminal, as in Docker: a TTY
session started with Tty false is framed, all of it on stdout.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from ..containers.execs import ExecConfig, ExecSession
from ..containers.logs import frame
from ..errors import BadParameter, EngineError
from ..interface import EngineInterface
from ..runtime.console import MAX_SIZE
from .hijack import HijackedInput, wait_for_head_read
from .http import Request, Response, json_response
from .router import Route
from .streams import RAW, stream_type


def _fields(req: Request) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise BadParameter("the request body must be a JSON object")
    return {str(k).lower(): v for k, v in body.items()}


def _bool(fields: dict[str, Any], name: str, default: bool = False) -> bool:
    value = fields.get(name.lower())
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadParameter(f"{name} must be true or false")
    return value


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name.lower())
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadParameter(f"{name} must be a string")
    return value


def _size(value: object, name: str) -> int:
    try:
        number = int(str(value), 10)
    except ValueError:
        raise BadParameter(f"{name}: {str(value)[:32]!r} is not a number") from None
    if not 0 <= number <= MAX_SIZE:
        raise BadParameter(f"{name}: {number} is out of range 0-{MAX_SIZE}")
    return number


def _console_size(fields: dict[str, Any]) -> tuple[int, int] | None:
    value = fields.get("consolesize")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise BadParameter("ConsoleSize must be [height, width]")
    height, width = (_size(v, "ConsoleSize") for v in value)
    return None if (height, width) == (0, 0) else (height, width)


def exec_create(engine: EngineInterface, req: Request, ref: str) -> Response:
    fields = _fields(req)
    if _bool(fields, "Privileged"):
        raise BadParameter("Privileged: privileged exec sessions are not supported by this engine "
                           "(it has no privileged mode); drop --privileged")
    cmd = fields.get("cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    env = fields.get("env") or []
    if not isinstance(cmd, list | type(None)) or not isinstance(env, list):
        raise BadParameter("Cmd and Env must be lists of strings")
    # Docker attaches no stream its client leaves out; every Docker client names them, and a
    # hand-written request that names none gets its output, not silence.
    config = ExecConfig(
        cmd=list(cmd or []), env=list(env), workdir=_text(fields, "WorkingDir"), user=_text(fields, "User"),
        tty=_bool(fields, "Tty"), stdin=_bool(fields, "AttachStdin"),
        stdout=_bool(fields, "AttachStdout", True), stderr=_bool(fields, "AttachStderr", True),
        detach_keys=_text(fields, "DetachKeys"), console_size=_console_size(fields))
    session = engine.execs.create(ref, config)
    return json_response({"Id": session.id}, 201)


def exec_start(engine: EngineInterface, req: Request, eid: str) -> Response | None:
    fields = _fields(req)
    detach, tty, size = _bool(fields, "Detach"), _bool(fields, "Tty"), _console_size(fields)
    execs = engine.execs
    session = execs.claim(eid)
    if size:
        execs.resize(session.id, *size)
    if detach:  # Docker answers a detached start once the process is on its way: errors are HTTP ones
        execs.prepare(session)
        threading.Thread(target=_run_detached, args=(engine, session), name="exec-detached", daemon=True).start()
        return Response(200, b"")
    writer = req.hijack(RAW if tty else stream_type(req))
    first = [True]

    def sink(stream: int, data: bytes) -> None:
        if first[0]:
            first[0] = False
            wait_for_head_read(req.handler.connection)
        writer.write(data if tty else frame(stream, data))

    try:
        execs.run(session, sink, HijackedInput(req) if session.config.stdin else None)
    except EngineError as exc:  # past the hijack: Docker says it on the stream
        try:
            sink(1, f"{exc.message}\r\n".encode())
        except OSError:
            pass
    return None


def _run_detached(engine: EngineInterface, session: ExecSession) -> None:
    try:
        engine.execs.run(session, lambda stream, data: None)
    except EngineError:
        pass  # the session ended with 126, which inspect shows


def exec_resize(engine: EngineInterface, req: Request, eid: str) -> Response:
    height, width = _size(req.arg("h"), "h"), _size(req.arg("w"), "w")
    engine.execs.resize(eid, height, width)
    return Response(200, b"", content_type="text/plain")


def exec_inspect(engine: EngineInterface, req: Request, eid: str) -> Response:
    s = engine.execs.get(eid)
    config = s.config
    return json_response({
        "ID": s.id, "Running": s.running, "ExitCode": s.exit_code, "ContainerID": s.container_id,
        "ProcessConfig": {"tty": config.tty, "entrypoint": config.cmd[0], "arguments": config.cmd[1:],
                          "privileged": False, "user": config.user},
        "OpenStdin": config.stdin, "OpenStdout": config.stdout, "OpenStderr": config.stderr,
        "CanRemove": False, "Pid": s.current_pid(),
        # Go sends the []byte of the keys given at create as base64, as dockerd does
        "DetachKeys": base64.b64encode(s.keys).decode() if config.detach_keys else "",
    })


ROUTES: list[Route] = [
    ("POST", "/containers/{ref}/exec", exec_create),
    ("POST", "/exec/{eid}/start", exec_start),
    ("POST", "/exec/{eid}/resize", exec_resize),
    ("GET", "/exec/{eid}/json", exec_inspect),
]
