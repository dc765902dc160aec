"""POST /build: the classic builder's endpoint (tar context in, JSON progress lines out)."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..build.builder import Builder
from ..engine import Engine
from ..errors import BadParameter, EngineError
from ..fsutil import rmtree
from ..layers import open_layer, unpack_layer
from .http import Request
from .router import route

BUILD_LOCK = threading.Lock()  # one build at a time: RUN steps are containers too


def _line(**data: object) -> bytes:
    return json.dumps(data).encode() + b"\n"


def containerfile(context: Path, name: str) -> str:
    """The named file, else Dockerfile, else Containerfile, from inside the context only."""
    for candidate in ([name] if name else ["Dockerfile", "Containerfile"]):
        path = (context / candidate).resolve()
        if context.resolve() in path.parents and path.is_file():
            return path.read_text()
    raise BadParameter(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")


def unpack_context(engine: Engine, req: Request, dest: Path) -> None:
    tarball = dest.with_suffix(".tar")
    try:
        with open(tarball, "wb") as out:
            for chunk in req.body_chunks():
                out.write(chunk)
        dest.mkdir()
        with open_layer(tarball) as stream:
            unpack_layer(stream, dest, engine.seams.whiteouts)
    finally:
        rmtree(tarball)


@route("POST", "/build")
def build(engine: Engine, req: Request) -> None:
    if req.arg("remote"):
        raise BadParameter("remote build contexts are not supported: send a local directory")
    tags = parse_qs(urlsplit(req.handler.path).query).get("t", [])
    context = engine.images.tmp / f"context-{secrets.token_hex(8)}"
    try:
        unpack_context(engine, req, context)
        text = containerfile(context, req.arg("dockerfile"))
        writer = req.stream("application/json")
        quiet = req.flag("q")

        def emit(message: str) -> None:
            if not quiet:
                writer.write(_line(stream=message))

        try:
            with BUILD_LOCK:
                image = Builder(engine).build(context, text, tags, emit)
            writer.write(_line(aux={"ID": image.id}))
        except EngineError as exc:
            writer.write(_line(errorDetail={"message": exc.message}, error=exc.message))
        except Exception as exc:  # the stream has started: report in-band, as Docker does
            writer.write(_line(errorDetail={"message": str(exc)}, error=str(exc)))
        writer.close()
    finally:
        rmtree(context)
