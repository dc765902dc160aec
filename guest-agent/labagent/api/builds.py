"""POST /build: the classic builder's endpoint (tar context in, JSON progress lines out).

The context is a tar from a stranger: it is unpacked as a context, not a layer (`.wh.` names are
plain files; device nodes and FIFOs are refused, since COPY would read through them), and the
Dockerfile is looked up inside it only, read only if it is a regular file, within bounds.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..beneath import open_in_root, open_tree
from ..build.builder import Builder
from ..build.containerfile import MAX_BYTES
from ..build.tree import NotRegular, reopen_regular
from ..errors import BadParameter, EngineError
from ..fsutil import rmtree
from ..images.layers import open_layer, unpack_context
from ..interface import EngineInterface
from .http import Request
from .router import Route

BUILD_LOCK = threading.Lock()  # one build at a time: RUN steps are containers too


def _line(**data: object) -> bytes:
    return json.dumps(data).encode() + b"\n"


def _read(fd: int, name: str) -> str | None:
    """The text of the regular file name in the context (links followed inside it), else None."""
    try:
        pathfd = open_in_root(fd, name, os.O_PATH)
    except (OSError, ValueError):
        return None
    try:
        readable = reopen_regular(pathfd, name)
    except NotRegular:
        return None
    finally:
        os.close(pathfd)
    with os.fdopen(readable, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise BadParameter(f"{name} is larger than {MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadParameter(f"{name} is not UTF-8 text") from None


def containerfile(context: Path, name: str) -> str:
    """The named file, else Dockerfile, else Containerfile, from inside the context only."""
    with open_tree(context) as fd:
        for candidate in ([name] if name else ["Dockerfile", "Containerfile"]):
            text = _read(fd, candidate)
            if text is not None:
                return text
    raise BadParameter(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")


def receive_context(req: Request, dest: Path) -> None:
    """The request body, unpacked into dest as a build context (devices and FIFOs refused)."""
    tarball = dest.with_suffix(".tar")
    try:
        with open(tarball, "wb") as out:
            for chunk in req.body_chunks():
                out.write(chunk)
        dest.mkdir()
        with open_layer(tarball) as stream:
            unpack_context(stream, dest)
    finally:
        rmtree(tarball)


def build(engine: EngineInterface, req: Request) -> None:
    if req.arg("remote"):
        raise BadParameter("remote build contexts are not supported: send a local directory")
    tags = parse_qs(urlsplit(req.handler.path).query).get("t", [])
    context = engine.images.tmp / f"context-{secrets.token_hex(8)}"
    try:
        receive_context(req, context)
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


ROUTES: list[Route] = [
    ("POST", "/build", build),
]
