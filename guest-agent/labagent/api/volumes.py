"""Volume endpoints: create, list, inspect, remove, prune (Docker's "local" driver only)."""

from __future__ import annotations

from typing import Any

from ..containers.mountplan import users_of
from ..containers.volumes import Volume, check_labels, check_volume_name
from ..errors import BadParameter, NotFound
from ..interface import EngineInterface
from .createfields import blank
from .filters import Filters, parse_filters
from .http import Request, Response, json_response
from .router import Route

CREATE_FIELDS = ("Name", "Driver", "DriverOpts", "Labels")


def create(engine: EngineInterface, req: Request) -> Response:
    body = req.json() or {}
    if not isinstance(body, dict):
        raise BadParameter("the volume create body must be a JSON object")
    for key, value in body.items():
        if key not in CREATE_FIELDS and not blank(value):
            raise BadParameter(f"{key}={str(value)[:48]!r} is not supported by this engine")
    driver = body.get("Driver") or "local"
    if driver != "local":
        raise BadParameter(f'Driver {str(driver)[:64]!r} is not supported: only "local" volumes exist here')
    if not blank(body.get("DriverOpts")):
        raise BadParameter("DriverOpts are not supported by this engine: a local volume is a directory "
                           "on the node (no type, device or o)")
    name = body.get("Name") or ""
    if name:
        check_volume_name(name)
    labels = check_labels(body.get("Labels"), "Labels")
    volume, _ = engine.volumes.create(name, labels)
    return json_response(engine.volumes.view(volume), 201)


def _in_use(engine: EngineInterface) -> set[str]:
    return {m.source for c in engine.containers.all() for m in c.spec.mounts if m.type == "volume"}


def list_volumes(engine: EngineInterface, req: Request) -> Response:
    filters = parse_filters(req.arg("filters"), ("name", "label", "dangling", "driver"))
    dangling = filters.flag("dangling")
    with engine.containers.lock:
        used = _in_use(engine)
        volumes = engine.volumes.all()
    chosen = [v for v in volumes
              if (not filters.get("name") or any(n in v.name for n in filters.get("name")))
              and filters.labels_match(v.labels) and filters.any_of("driver", ["local"])
              and (dangling is None or dangling == (v.name not in used))]
    return json_response({"Volumes": [engine.volumes.view(v) for v in chosen], "Warnings": None})


def inspect(engine: EngineInterface, req: Request, name: str) -> Response:
    return json_response(engine.volumes.view(engine.volumes.get(name)))


def remove(engine: EngineInterface, req: Request, name: str) -> Response:
    with engine.containers.lock:
        try:
            engine.volumes.remove(name, users_of(name, engine.containers.all()))
        except NotFound:
            if not req.flag("force"):
                raise
    return Response(204)


def _excluded(volume: Volume, filters: Filters) -> bool:
    """`label!=K` or `label!=K=V`: volumes carrying that label are kept."""
    for unwanted in filters.get("label!"):
        key, eq, value = unwanted.partition("=")
        if key in volume.labels and (not eq or volume.labels[key] == value):
            return True
    return False


def prune(engine: EngineInterface, req: Request) -> Response:
    """Unused anonymous volumes (dockerd 23+); with the `all` filter, unused named ones too."""
    filters = parse_filters(req.arg("filters"), ("label", "label!", "all"))
    everything = bool(filters.flag("all"))
    deleted: list[str] = []
    reclaimed = 0
    with engine.containers.lock:
        used = _in_use(engine)
        for volume in engine.volumes.all():
            if volume.name in used or not (everything or volume.anonymous) \
                    or not filters.labels_match(volume.labels) or _excluded(volume, filters):
                continue
            size = engine.volumes.size(volume.name)
            engine.volumes.remove(volume.name, [])
            deleted.append(volume.name)
            reclaimed += size
    engine.events.emit("volume", "prune", "", reclaimed=str(reclaimed))
    result: dict[str, Any] = {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
    return json_response(result)


ROUTES: list[Route] = [
    ("GET", "/volumes", list_volumes),
    ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune),
    ("GET", "/volumes/{name}", inspect),
    ("DELETE", "/volumes/{name}", remove),
]
