"""System endpoints: ping, version, info, disk usage (system df)."""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .. import nodefacts
from ..interface import EngineInterface
from . import diskusage, views
from .http import Request, Response, json_response
from .router import Route

ENGINE_ID = "engine-id"  # under the engine root, as dockerd keeps its own


def ping(engine: EngineInterface, req: Request) -> Response:
    return Response(200, b"OK", "text/plain; charset=utf-8",
                    {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                     "Builder-Version": "1"})


def version(engine: EngineInterface, req: Request) -> Response:
    return json_response(views.version())


def _read_id(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            return str(uuid.UUID(handle.read(64).decode("ascii").strip()))
    except (OSError, ValueError):
        return None


def engine_id(root: Path) -> str:
    """This engine's own ID: made once, kept across restarts (a new root is a new engine)."""
    path = root / ENGINE_ID
    if known := _read_id(path):
        return known
    fresh = str(uuid.uuid4())
    tmp = root / f".{ENGINE_ID}-{secrets.token_hex(4)}"
    try:
        tmp.write_text(f"{fresh}\n")
        try:
            os.link(tmp, path)  # the first writer wins; a racing request then reads its ID
        except FileExistsError:
            if known := _read_id(path):
                return known
            os.replace(tmp, path)  # what was there is no ID: ours takes its place
        return _read_id(path) or fresh
    except OSError:  # a root the engine cannot write: an ID that at least stays the same
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, os.uname().nodename))
    finally:
        tmp.unlink(missing_ok=True)


def info(engine: EngineInterface, req: Request) -> Response:
    root = Path(os.path.realpath(engine.root))
    node = nodefacts.read_facts(root, engine.lifecycle.cgroups.base)
    crun = shutil.which(engine.lifecycle.runtime.crun) or engine.lifecycle.runtime.crun
    listeners = len(getattr(engine.events, "_subscribers", ()))  # events.py keeps them private
    return json_response(views.info(engine.containers.all(), len(engine.images.images()), str(root), node,
                                    engine_id(root), crun, nodefacts.runtime_commit(crun), listeners))


def system_df(engine: EngineInterface, req: Request) -> Response:
    """GET /system/df; `type` may repeat (container, image, volume, build-cache)."""
    types = parse_qs(urlsplit(req.handler.path).query).get("type", [])
    return json_response(diskusage.disk_usage(engine, diskusage.kinds_of(types)))


ROUTES: list[Route] = [
    ("GET", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/system/df", system_df),
]
