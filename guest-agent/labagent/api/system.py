"""System endpoints: ping, version, info."""

from __future__ import annotations

from ..interface import EngineInterface
from . import views
from .http import Request, Response, json_response
from .router import Route


def ping(engine: EngineInterface, req: Request) -> Response:
    return Response(200, b"OK", "text/plain; charset=utf-8",
                    {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                     "Builder-Version": "1"})


def version(engine: EngineInterface, req: Request) -> Response:
    return json_response(views.version())


def info(engine: EngineInterface, req: Request) -> Response:
    return json_response(views.info(engine.containers.all(), len(engine.images.images()), str(engine.root)))


ROUTES: list[Route] = [
    ("GET", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
]
