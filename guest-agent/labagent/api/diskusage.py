"""The figures of `GET /system/df`: what images, containers, volumes and the build cache hold
on the node's disk, measured by bounded walks (fsutil.tree_size) of the trees themselves.

An image's Size is that of its unpacked layers, as dockerd's overlay2 driver counts it; a layer
shared with another image is its SharedSize. Unpacked layers never change once in place, so
their sizes are kept; containers' upper dirs and volumes are walked at each request.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..containers.model import Container
from ..containers.mountplan import users_of
from ..errors import BadParameter, EngineError
from ..fsutil import read_json, tree_size
from ..images.store import Image
from ..interface import EngineInterface
from . import views

KINDS = ("container", "image", "volume", "build-cache")
MAX_KEPT = 4096  # layer sizes remembered; past it the memo starts over
MAX_CACHE_RECORDS = 10_000  # build cache entries listed, at most


class LayerSizes:
    """Bytes of each unpacked layer directory, measured once (layers are immutable in place)."""

    def __init__(self) -> None:
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    def size(self, layer: Path) -> int:
        key = str(layer)
        with self._lock:
            if key in self._sizes:
                return self._sizes[key]
        if not layer.is_dir():
            return 0  # not (or no longer) unpacked: nothing on disk, and nothing to remember
        measured = tree_size(layer)
        with self._lock:
            if len(self._sizes) >= MAX_KEPT:
                self._sizes.clear()
            self._sizes[key] = measured
        return measured


LAYER_SIZES = LayerSizes()


def kinds_of(values: list[str]) -> set[str]:
    """The `type` query values (API 1.42); none means every kind."""
    for value in values:
        if value not in KINDS:
            raise BadParameter(f"unknown object type: {value[:64]}")
    return set(values) or set(KINDS)


def disk_usage(engine: EngineInterface, kinds: set[str]) -> dict[str, Any]:
    containers = engine.containers.all()
    images = engine.images.images()
    layer_size = {d: LAYER_SIZES.size(engine.images.layer_dir(d)) for image in images for d in image.diff_ids}
    answer: dict[str, Any] = {"LayersSize": 0, "Images": None, "Containers": None, "Volumes": None,
                              "BuildCache": None}
    if "image" in kinds:
        answer["LayersSize"] = sum(layer_size.values())
        answer["Images"] = _images(images, containers, layer_size)
    if "container" in kinds:
        answer["Containers"] = [_container(engine, c, images, layer_size) for c in containers]
    if "volume" in kinds:
        answer["Volumes"] = [{**engine.volumes.view(v), "UsageData": {
            "Size": tree_size(engine.volumes.data_dir(v.name)),
            "RefCount": len(users_of(v.name, containers))}} for v in engine.volumes.all()]
    if "build-cache" in kinds:
        answer["BuildCache"] = build_cache(engine, set(layer_size))
    return answer


def image_size(image: Image, layer_size: dict[str, int]) -> int:
    return sum(layer_size.get(d, 0) for d in set(image.diff_ids))


def _images(images: list[Image], containers: list[Container], layer_size: dict[str, int]) -> list[dict[str, Any]]:
    users: dict[str, int] = {}  # how many images hold each layer
    for image in images:
        for d in set(image.diff_ids):
            users[d] = users.get(d, 0) + 1
    summaries = []
    for image in images:
        size = image_size(image, layer_size)
        shared = sum(layer_size.get(d, 0) for d in set(image.diff_ids) if users[d] > 1)
        count = sum(c.spec.image_id == image.id for c in containers)
        summaries.append({**views.image_summary(image, count), "Size": size, "SharedSize": shared,
                          "VirtualSize": size})
    return summaries


def _container(engine: EngineInterface, c: Container, images: list[Image],
               layer_size: dict[str, int]) -> dict[str, Any]:
    summary = views.container_summary(c, engine.networks.settings_of(c))
    rw = tree_size(engine.containers.bundle(c.id) / "upper")
    base = next((image_size(i, layer_size) for i in images if i.id == c.spec.image_id), 0)
    return {**summary, "SizeRw": rw, "SizeRootFs": rw + base}


def build_cache(engine: EngineInterface, image_layers: set[str]) -> list[dict[str, Any]]:
    """The builder's cached steps (build/builder.py: <root>/build-cache/<key>.json) whose layer
    is still unpacked; one that an image also holds is Shared, as BuildKit says of its records."""
    records: list[dict[str, Any]] = []
    try:
        paths = sorted((engine.root / "build-cache").glob("*.json"))[:MAX_CACHE_RECORDS]
    except OSError:
        return records
    for path in paths:
        try:
            entry = read_json(path)
            diff_id = str(entry["diff_id"])
            layer = engine.images.layer_dir(diff_id)
        except (OSError, ValueError, KeyError, TypeError, EngineError):
            continue
        if not layer.is_dir():
            continue
        records.append({"ID": path.stem, "Parent": "", "Parents": [], "Type": "regular", "Description": "",
                        "InUse": False, "Shared": diff_id in image_layers, "Size": LAYER_SIZES.size(layer),
                        "CreatedAt": str(entry.get("created") or ""), "LastUsedAt": None, "UsageCount": 0})
    return records
