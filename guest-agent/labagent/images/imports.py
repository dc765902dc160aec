"""`docker import`: a root filesystem tarball (plain or gzip) becomes a one-layer image.

The tarball is a stranger's like any layer: stored as a blob, its uncompressed digest computed
within the layer stream bound, then unpacked by the same unpacker. The whole import is staged,
so a tarball that fails leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..fsutil import rfc3339
from . import changes as config_changes
from .layers import HashingReader, open_layer, stream_limit
from .reference import Reference
from .store import LAYER_GZIP, LAYER_TAR, Image, ImageStore, LayerBlob

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def import_rootfs(store: ImageStore, tarball: Path, ref: Reference | None, message: str,
                  changes: list[str]) -> Image:
    config = config_changes.config_from(changes)  # refused before anything is stored
    with store.staging() as stage:
        blob = store.put_file(tarball, stage)
        path = store.blob_path(blob.digest)
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
        with open_layer(path) as stream:
            diff_id = HashingReader(stream, stream_limit(store.limits, store.layers)).drain()
        created, message = rfc3339(), message or "Imported from -"
        document = {"architecture": ARCH, "os": "linux", "created": created, "config": config,
                    "comment": message, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                    "history": [{"created": created, "comment": message}]}
        layer = LayerBlob(blob.digest, blob.size, LAYER_GZIP if gzipped else LAYER_TAR)
        image = store.add_image(json.dumps(document, sort_keys=True).encode(), [layer],
                                [str(ref)] if ref else [], stage)
    store.emit("import", image)
    return image
