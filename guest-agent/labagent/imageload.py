"""`docker load`: import a docker-save or OCI-layout tarball into the image store."""

from __future__ import annotations

import json
import platform
import secrets
import tarfile
from pathlib import Path
from typing import Any

from .errors import BadParameter
from .fsutil import rmtree
from .imagestore import LAYER_GZIP, LAYER_TAR, REF_NAME, ImageStore, LayerBlob
from .layers import clean_name

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
CONTAINERD_NAME = "io.containerd.image.name"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


class Archive:
    """Random access to a tarball's members by cleaned name."""

    def __init__(self, tar: tarfile.TarFile, tmp: Path) -> None:
        self.tar = tar
        self.tmp = tmp
        self.members = {clean_name(m.name): m for m in tar.getmembers()}

    def has(self, name: str) -> bool:
        return clean_name(name) in self.members

    def read(self, name: str) -> bytes:
        handle = self._open(name)
        with handle:
            return handle.read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as exc:
            raise BadParameter(f"{name} in the archive is not valid JSON: {exc}") from None

    def to_blob(self, store: ImageStore, name: str, expect: str | None = None) -> LayerBlob:
        """Copy a member into the blob store, checking its digest when one is claimed."""
        tmp = self.tmp / f"member-{secrets.token_hex(8)}"
        try:
            with self._open(name) as src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            with open(tmp, "rb") as handle:
                magic = handle.read(2)
            blob = store.put_file(tmp)
        finally:
            rmtree(tmp)
        if expect and blob.digest != expect:
            raise BadParameter(f"blob {name} has digest {blob.digest}, expected {expect}")
        media = LAYER_GZIP if magic == b"\x1f\x8b" else LAYER_TAR
        return LayerBlob(blob.digest, blob.size, media)

    def _open(self, name: str) -> Any:
        member = self.members.get(clean_name(name))
        handle = self.tar.extractfile(member) if member else None
        if handle is None:
            raise BadParameter(f"the archive has no file {name!r}")
        return handle


def load_archive(store: ImageStore, path: Path) -> list[str]:
    """Load every image in the tarball; return Docker's "Loaded image: ..." lines."""
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as exc:
        raise BadParameter(f"not a tar archive: {exc}") from None
    with tar:
        archive = Archive(tar, store.tmp)
        if archive.has("manifest.json"):
            return _load_docker(store, archive)
        if archive.has("index.json"):
            return _load_oci(store, archive)
    raise BadParameter("not an image archive: it has neither manifest.json (docker save) "
                       "nor index.json (OCI layout)")


def _messages(image_id: str, tags: list[str]) -> list[str]:
    return [f"Loaded image: {t}" for t in tags] or [f"Loaded image ID: {image_id}"]


def _load_docker(store: ImageStore, archive: Archive) -> list[str]:
    entries = archive.json("manifest.json")
    if not isinstance(entries, list):
        raise BadParameter("manifest.json is not a list of images")
    lines: list[str] = []
    for entry in entries:
        config = archive.read(entry["Config"])
        layers = [archive.to_blob(store, name) for name in entry.get("Layers") or []]
        tags = list(entry.get("RepoTags") or [])
        image = store.add_image(config, layers, tags)
        lines += _messages(image.id, image.tags)
    return lines


def _blob_name(digest: str) -> str:
    algo, _, hexdigest = digest.partition(":")
    return f"blobs/{algo}/{hexdigest}"


def _pick_manifest(archive: Archive, descriptor: dict[str, Any]) -> dict[str, Any]:
    """Follow nested indexes down to one manifest, preferring this machine's platform."""
    while descriptor.get("mediaType") in INDEX_TYPES:
        index = archive.json(_blob_name(descriptor["digest"]))
        manifests = index.get("manifests") or []
        if not manifests:
            raise BadParameter("an image index in the archive lists no manifests")
        native = [m for m in manifests
                  if (m.get("platform") or {}).get("architecture") == ARCH
                  and (m.get("platform") or {}).get("os", "linux") == "linux"]
        descriptor = (native or manifests)[0]
    manifest: dict[str, Any] = archive.json(_blob_name(descriptor["digest"]))
    return manifest


def _load_oci(store: ImageStore, archive: Archive) -> list[str]:
    index = archive.json("index.json")
    lines: list[str] = []
    for descriptor in index.get("manifests") or []:
        manifest = _pick_manifest(archive, descriptor)
        config_digest = manifest["config"]["digest"]
        config = archive.read(_blob_name(config_digest))
        layers = [archive.to_blob(store, _blob_name(layer["digest"]), layer["digest"])
                  for layer in manifest.get("layers") or []]
        notes = descriptor.get("annotations") or {}
        name = notes.get(CONTAINERD_NAME) or notes.get(REF_NAME)
        image = store.add_image(config, layers, [name] if name else [])
        lines += _messages(image.id, image.tags)
    return lines
