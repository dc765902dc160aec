"""Image endpoints: list, load (docker load), the pull that explains why not, inspect, remove."""

from __future__ import annotations

import json
import secrets

from ..fsutil import rmtree
from ..interface import EngineInterface
from . import views
from .http import Request, Response, json_response
from .router import Route


def list_images(engine: EngineInterface, req: Request) -> Response:
    users: dict[str, int] = {}
    for c in engine.containers.all():
        users[c.spec.image_id] = users.get(c.spec.image_id, 0) + 1
    return json_response([views.image_summary(i, users.get(i.id, 0)) for i in engine.images.images()])


def load(engine: EngineInterface, req: Request) -> Response:
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


def pull(engine: EngineInterface, req: Request) -> Response:
    name = req.arg("fromImage") or "image"
    return json_response({"message": f"cannot pull {name}: this lab node reaches no registry. "
                          "Load images with `docker load` (or `labctl load -i FILE`), "
                          "or send one from the host with `lab image push LAB NODE FILE`."}, 404)


def image_inspect(engine: EngineInterface, req: Request, name: str) -> Response:
    image = engine.images.resolve(name)
    return json_response(views.image_inspect(image, [str(p) for p in engine.images.layer_dirs(image)]))


def image_remove(engine: EngineInterface, req: Request, name: str) -> Response:
    return json_response(engine.remove_image(name, force=req.flag("force")))


ROUTES: list[Route] = [
    ("GET", "/images/json", list_images),
    ("POST", "/images/load", load),
    ("POST", "/images/create", pull),
    ("GET", "/images/{name*}/json", image_inspect),
    ("DELETE", "/images/{name*}", image_remove),
]
