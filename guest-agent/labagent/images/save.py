"""`docker save`: images as one tar both docker's `load` and this engine's read.

The archive is what Docker 25+ writes: an OCI image layout (oci-layout, index.json,
blobs/sha256/...) that is also a docker-save archive (manifest.json with Config, RepoTags,
Layers and Parent, and the legacy `repositories`). Layers go out as stored, streamed from their
blob files in bounded pieces: a save of gigabytes holds a megabyte in memory. The blobs are
held (a staging) while they stream, so a concurrent rmi cannot collect them mid-save.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import BadParameter
from ..fsutil import read_json
from .delete import is_id_ref
from .reference import has_tag, parse
from .store import HEX64, MANIFEST_TYPE, Image, ImageStore, normalize

MAX_NAMES = 256  # names in one save (the CLI sends one query parameter each)
PIECE = 1 << 20  # bytes written to the client at a time
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CONTAINERD_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass
class Saved:
    image: Image
    tags: list[str] = field(default_factory=list)


def _one(store: ImageStore, ref: str) -> list[tuple[Image, str | None]]:
    """What one name means: a repository name alone is every tag of it; an id, no tag at all."""
    if has_tag(ref) or HEX64.match(ref.removeprefix("sha256:")):
        image = store.resolve(ref)
        return [(image, None if is_id_ref(image, ref) else normalize(ref))]
    repo = parse(ref).name
    found: list[tuple[Image, str | None]] = [(i, t) for i in store.images() for t in i.tags
                                             if t.rpartition(":")[0] == repo]
    return found or [(store.resolve(ref), None)]


def select(store: ImageStore, names: list[str]) -> list[Saved]:
    """The images the names ask for, each once with the tags asked: 404 for any unknown name."""
    if not names or not all(n.strip() for n in names):
        raise BadParameter("names: give at least one image name, none empty")
    if len(names) > MAX_NAMES:
        raise BadParameter(f"names: {len(names)} images asked for, at most {MAX_NAMES} at once")
    chosen: dict[str, Saved] = {}
    for name in names:
        for image, tag in _one(store, name.strip()):
            saved = chosen.setdefault(image.id, Saved(image))
            if tag and tag not in saved.tags:
                saved.tags.append(tag)
    return list(chosen.values())


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.size = (0o755 if directory else 0o644), 0, size
    if directory:
        info.type = tarfile.DIRTYPE
    return info


def _documents(store: ImageStore, chosen: list[Saved]) -> tuple[dict[str, Any], list[str]]:
    """index.json, manifest.json and repositories, and the blob digests to send, in order."""
    ids = {s.image.id: s.image for s in chosen}
    items: list[dict[str, Any]] = []
    descriptors: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    blobs: list[str] = []
    for saved in chosen:
        image = saved.image
        manifest = read_json(store.blob_path(image.manifest_digest))
        layers = [layer["digest"] for layer in manifest["layers"]]
        blobs += [image.id, *layers, image.manifest_digest]
        item: dict[str, Any] = {"Config": f"blobs/sha256/{image.id[7:]}", "RepoTags": saved.tags or None,
                                "Layers": [f"blobs/sha256/{d[7:]}" for d in layers]}
        parent = ids.get(image.parent)
        if parent is not None and image.diff_ids[:len(parent.diff_ids)] == parent.diff_ids:
            item["Parent"] = parent.id
        items.append(item)
        size = store.blob_path(image.manifest_digest).stat().st_size
        platform = {"architecture": str(image.config.get("architecture") or "amd64"),
                    "os": str(image.config.get("os") or "linux")}
        base = {"mediaType": MANIFEST_TYPE, "digest": image.manifest_digest, "size": size, "platform": platform}
        for tag in saved.tags:
            ref = parse(tag)
            notes = {CONTAINERD_NAME: f"{ref.full_name}:{ref.tag}", REF_NAME: ref.tag}
            descriptors.append({**base, "annotations": notes})
            if image.diff_ids:
                repositories.setdefault(ref.name, {})[ref.tag] = image.diff_ids[-1][7:]
        if not saved.tags:
            descriptors.append(base)
    documents = {
        "index.json": {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors},
        "manifest.json": items,
        "oci-layout": {"imageLayoutVersion": "1.0.0"},
    }
    if repositories:
        documents["repositories"] = repositories
    return documents, list(dict.fromkeys(blobs))


def write(store: ImageStore, chosen: list[Saved], out: Sink) -> None:
    """The archive, streamed to out; each image's `save` event once it is all sent."""
    with store.staging() as stage:
        with store.exclusive():
            documents, blobs = _documents(store, chosen)
            stage.blobs.update(blobs)
            for digest in blobs:
                store.blob_path(digest).stat()  # still there now, held from here on
        with tarfile.open(fileobj=out, mode="w|", bufsize=PIECE, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            tar.addfile(_info("blobs", directory=True))
            tar.addfile(_info("blobs/sha256", directory=True))
            for digest in blobs:
                with open(store.blob_path(digest), "rb") as handle:
                    tar.addfile(_info(f"blobs/sha256/{digest[7:]}", os.fstat(handle.fileno()).st_size), handle)
            for name, document in documents.items():
                data = json.dumps(document).encode() + b"\n"
                tar.addfile(_info(name, len(data)), io.BytesIO(data))
    for saved in chosen:
        store.emit("save", saved.image)
