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
from ..build.builder import Builder, BuildError
from ..build.containerfile import MAX_BYTES
from ..build.ignore import ignored
from ..build.options import MAX_PAIRS, BuildOptions, bounded_pairs
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


def _json(req: Request, name: str, default: object) -> object:
    text = req.arg(name)
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        raise BadParameter(f"{name}: invalid JSON") from None


# Query options the classic builder takes that this one cannot honour: refused when set.
REFUSED = {"extrahosts": "extra hosts for RUN steps", "squash": "squashing", "platform": "another platform",
           "remote": "remote build contexts (send a local directory)", "outputs": "build outputs",
           "cgroupparent": "a cgroup parent", "isolation": "an isolation technology",
           "memory": "memory limits for RUN steps", "memswap": "swap limits for RUN steps",
           "cpushares": "CPU shares for RUN steps", "cpusetcpus": "cpusets for RUN steps",
           "cpusetmems": "cpusets for RUN steps", "cpuperiod": "CPU periods for RUN steps",
           "cpuquota": "CPU quotas for RUN steps", "shmsize": "a /dev/shm size for RUN steps",
           "ulimits": "ulimits for RUN steps", "pull": "pulling (images come from `docker load`)"}
UNSET = ("", "0", "false", "{}", "[]", "null", "default")  # what clients send for "not set"


def options(req: Request) -> BuildOptions:
    """The query, checked: every option is honoured or refused, naming it."""
    for name, what in REFUSED.items():
        value = req.arg(name)
        if value.lower() not in UNSET:
            raise BadParameter(f"{name}: {what} is not supported by this builder")
    cache_from = _json(req, "cachefrom", None)
    if cache_from is not None and (not isinstance(cache_from, list) or len(cache_from) > MAX_PAIRS
                                   or not all(isinstance(c, str) for c in cache_from)):
        raise BadParameter("cachefrom: want a JSON array of image names")
    network = req.arg("networkmode") or "default"
    tags = parse_qs(urlsplit(req.handler.path).query).get("t", [])
    if len(tags) > MAX_PAIRS:
        raise BadParameter(f"t: more than {MAX_PAIRS} tags")
    return BuildOptions(
        tags=tags,
        buildargs=bounded_pairs("buildargs", _json(req, "buildargs", {})),
        labels=bounded_pairs("labels", _json(req, "labels", {})),
        network_mode="bridge" if network == "default" else network,
        target=req.arg("target"),
        nocache=req.flag("nocache"),
        remove=req.flag("rm", True) or req.flag("forcerm"),
        cache_from=cache_from if cache_from else None,
    )


def _drop_client_files(context: Path, dockerfile: str) -> None:
    """What the client put in the context for the server only: a Dockerfile it sent from outside the
    context (docker-py names it `.dockerfile.<hex>`), and the Dockerfile and .dockerignore when
    .dockerignore excludes them (clients send both anyway, so the builder can read them)."""
    with open_tree(context) as fd:
        ignore = (_read(fd, ".dockerignore") or "").splitlines()
        for name in (dockerfile or "Dockerfile", ".dockerignore"):
            if "/" in name.strip("/") or not name:
                continue  # only names at the top: nothing below is unlinked by a path
            client_made = name.startswith(".dockerfile.") and name[12:].isalnum()
            if client_made or ignored(ignore, name):
                try:
                    os.unlink(name.strip("/"), dir_fd=fd)
                except OSError:
                    pass


def build(engine: EngineInterface, req: Request) -> None:
    opts = options(req)
    context = engine.images.tmp / f"context-{secrets.token_hex(8)}"
    try:
        receive_context(req, context)
        # the first value, as Docker reads it: docker-py sends a second one (the text) for a file
        # from outside the context
        name = (parse_qs(urlsplit(req.handler.path).query).get("dockerfile") or [""])[0]
        text = containerfile(context, name)
        _drop_client_files(context, name)
        writer = req.stream("application/json")
        quiet = req.flag("q")

        def emit(message: str) -> None:
            if not quiet:
                writer.write(_line(stream=message))

        def aux(image_id: str) -> None:
            writer.write(_line(aux={"ID": image_id}))

        try:
            with BUILD_LOCK:
                image = Builder(engine).build(context, text, opts, emit, aux)
            if quiet:
                writer.write(_line(stream=image.id + "\n"))
        except BuildError as exc:
            writer.write(_line(errorDetail={"code": exc.code, "message": exc.message}, error=exc.message))
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
