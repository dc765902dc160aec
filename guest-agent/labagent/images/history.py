"""`docker history`: the config's history entries with their layers' sizes, newest first.

The newest entry carries the image's id and tags; the entry that ends the parent's own
history (the image a build started FROM) carries the parent's, and so on down; the rest are
`<missing>`, as dockerd shows steps whose interim images it no longer has.
"""

from __future__ import annotations

from typing import Any

from ..fsutil import parse_rfc3339, read_json, tree_size
from .store import LAYER_TAR, Image, ImageStore


def _entries(image: Image) -> list[dict[str, Any]]:
    raw = image.config.get("history")
    return [h for h in raw if isinstance(h, dict)] if isinstance(raw, list) else []


def layer_sizes(store: ImageStore, image: Image) -> list[int]:
    """Each layer's uncompressed size: a plain tar's own, else what its unpacked files hold."""
    try:
        layers = read_json(store.blob_path(image.manifest_digest)).get("layers") or []
    except (OSError, ValueError):
        layers = []
    sizes = []
    for i, diff_id in enumerate(image.diff_ids):
        layer = layers[i] if i < len(layers) and isinstance(layers[i], dict) else {}
        if layer.get("mediaType") == LAYER_TAR and isinstance(layer.get("size"), int):
            sizes.append(int(layer["size"]))
        else:
            sizes.append(tree_size(store.layer_dir(diff_id)))
    return sizes


def _when(value: object) -> int:
    try:
        return int(parse_rfc3339(value)) if isinstance(value, str) else 0
    except ValueError:
        return 0


def history(store: ImageStore, image: Image) -> list[dict[str, Any]]:
    sizes = layer_sizes(store, image)
    items: list[dict[str, Any]] = []
    layer = 0
    for entry in _entries(image):
        size = 0
        if not entry.get("empty_layer") and layer < len(sizes):
            size, layer = sizes[layer], layer + 1
        items.append({"Id": "<missing>", "Created": _when(entry.get("created")),
                      "CreatedBy": str(entry.get("created_by") or ""), "Tags": None, "Size": size,
                      "Comment": str(entry.get("comment") or "")})
    items.reverse()
    current: Image | None = image
    seen: set[str] = set()
    while current is not None and current.id not in seen:
        seen.add(current.id)
        depth = len(_entries(current))
        if 0 < depth <= len(items):
            items[len(items) - depth].update(Id=current.id, Tags=list(current.tags) or None)
        current = store.by_id(current.parent) if current.parent else None
    return items
