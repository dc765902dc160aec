"""GET /system/df: what images, containers and their layers take on disk (docker system df).

Sizes are measured, not estimated: each unpacked layer once, each container's writable layer.
Volumes carry UsageData (bytes held, containers using them); the build cache is listed empty.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..containers.usage import tree_size
from ..errors import BadParameter
from ..interface import EngineInterface
from . import views
from .http import Request, Response, json_response
from .router import Route

TYPES = ("container", "image", "volume", "build-cache")


def disk_usage(engine: EngineInterface, req: Request) -> Response:
    wanted = req.arg("type")
    if wanted and wanted not in TYPES:
        raise BadParameter(f"unknown object type: {wanted[:40]}")
    images, containers = engine.images.images(), engine.containers.all()
    users = Counter(d for image in images for d in set(image.diff_ids))
    layer_size = {d: tree_size(engine.images.layer_dir(d)) for d in users}
    in_use = Counter(c.spec.image_id for c in containers)
    result: dict[str, Any] = {"LayersSize": sum(layer_size.values())}
    if wanted in ("", "image"):
        listed = []
        for image in images:
            entry = views.image_summary(image, in_use[image.id])
            # measured as LayersSize is, so that the CLI's reclaimable share adds up
            entry["Size"] = entry["VirtualSize"] = sum(layer_size[d] for d in set(image.diff_ids))
            entry["SharedSize"] = sum(layer_size[d] for d in set(image.diff_ids) if users[d] > 1)
            listed.append(entry)
        result["Images"] = listed
    if wanted in ("", "container"):
        sizes = {image.id: sum(layer_size[d] for d in set(image.diff_ids)) for image in images}
        listed = []
        for c in containers:
            entry = views.container_summary(c)
            entry["SizeRw"] = tree_size(engine.containers.bundle(c.id) / "upper")
            entry["SizeRootFs"] = entry["SizeRw"] + sizes.get(c.spec.image_id, 0)
            listed.append(entry)
        result["Containers"] = listed
    if wanted in ("", "volume"):
        refs = Counter(m.source for c in containers for m in c.spec.mounts if m.type == "volume")
        result["Volumes"] = [{**engine.volumes.view(v), "UsageData": {"Size": engine.volumes.size(v.name),
                                                                      "RefCount": refs[v.name]}}
                             for v in engine.volumes.all()]
    if wanted in ("", "build-cache"):
        result["BuildCache"] = []
    return json_response(result)


ROUTES: list[Route] = [
    ("GET", "/system/df", disk_usage),
]
