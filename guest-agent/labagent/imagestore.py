"""Images as an OCI image layout (ROOT/images) plus layers unpacked once (ROOT/layers/<diffid>).

index.json is the record of which manifests exist and which names point at them
(`org.opencontainers.image.ref.name` holds the full `repo:tag`). Blobs are content-addressed;
each layer is unpacked once, by diff id, and shared by every image and container.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadParameter, Conflict, NotFound
from .fsutil import read_json, rmtree, write_json
from .layers import HashingReader, Whiteouts, open_layer, unpack_layer

REF_NAME = "org.opencontainers.image.ref.name"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
HEX64 = re.compile(r"^[0-9a-f]{1,64}$")


@dataclass
class Image:
    id: str  # sha256 of the config blob, as Docker shows it
    manifest_digest: str
    config: dict[str, Any]
    diff_ids: list[str]
    size: int
    tags: list[str] = field(default_factory=list)

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "1970-01-01T00:00:00Z")


@dataclass(frozen=True)
class LayerBlob:
    digest: str
    size: int
    media_type: str


def normalize(ref: str) -> str:
    """`busybox`, `docker.io/library/busybox` and `busybox:latest` are one name."""
    ref = ref.strip()
    if not ref or any(c.isspace() for c in ref) or "@" in ref:
        raise BadParameter(f"invalid reference format: {ref!r}")
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        name, tag = ref, "latest"
    if not name or not tag:
        raise BadParameter(f"invalid reference format: {ref!r}")
    return f"{name.lower()}:{tag}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


class ImageStore:
    def __init__(self, root: Path, whiteouts: Whiteouts | None = None) -> None:
        self.dir = root / "images"
        self.blobs = self.dir / "blobs" / "sha256"
        self.layers = root / "layers"
        self.tmp = root / "tmp"
        self.whiteouts = whiteouts
        self._lock = threading.RLock()
        self._known: dict[str, Image] = {}  # by manifest digest; configs are shared, not copied
        self._index_cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        for path in (self.blobs, self.layers, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "oci-layout").exists():
            write_json(self.dir / "oci-layout", {"imageLayoutVersion": "1.0.0"})
        if not (self.dir / "index.json").exists():
            write_json(self.dir / "index.json", {"schemaVersion": 2, "manifests": []})

    def exclusive(self) -> AbstractContextManager[Any]:
        """The store's own lock: whoever holds it (a build at start-up) makes lookups wait."""
        return self._lock

    # blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or not HEX64.match(hexdigest) or len(hexdigest) != 64:
            raise BadParameter(f"invalid digest {digest!r}")
        return self.blobs / hexdigest

    def put_bytes(self, data: bytes) -> LayerBlob:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            tmp = self.tmp / f"blob-{secrets.token_hex(8)}"
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return LayerBlob(digest, len(data), "")

    def put_file(self, src: Path) -> LayerBlob:
        """Move (or copy) a file into the blob store under its own digest."""
        digest = sha256_file(src)
        path = self.blob_path(digest)
        if not path.exists():
            tmp = self.tmp / f"blob-{secrets.token_hex(8)}"
            shutil.copyfile(src, tmp)
            os.replace(tmp, path)
        return LayerBlob(digest, path.stat().st_size, "")

    # layers ----------------------------------------------------------------------------
    def layer_dir(self, diff_id: str) -> Path:
        return self.layers / self.blob_path(diff_id).name

    def ensure_layer(self, diff_id: str, blob_digest: str) -> Path:
        """Unpack a layer blob once; a second image with the same diff id reuses it."""
        dest = self.layer_dir(diff_id)
        with self._lock:
            if dest.exists():
                return dest
            tmp = self.layers / f".tmp-{secrets.token_hex(8)}"
            tmp.mkdir()
            try:
                with open_layer(self.blob_path(blob_digest)) as stream:
                    reader = HashingReader(stream)
                    unpack_layer(reader, tmp, self.whiteouts)  # type: ignore[arg-type]
                    got = reader.drain()
                if got != diff_id:
                    raise BadParameter(f"layer {blob_digest} has diff id {got}, config says {diff_id}")
                os.rename(tmp, dest)
            finally:
                rmtree(tmp)
            return dest

    # images ----------------------------------------------------------------------------
    def _index(self) -> dict[str, Any]:
        """A fresh copy of index.json; parsed again only when the file changed.

        Every lookup (create, start, inspect) reads it, and parsing it each time cost
        milliseconds under TCG. The engine writes it through _write_index only, and the
        file's identity (inode, size, mtime) also catches anyone else's rename over it.
        """
        path = self.dir / "index.json"
        info = os.stat(path)
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        if self._index_cache is None or self._index_cache[0] != key:
            self._index_cache = (key, read_json(path))
        return copy.deepcopy(self._index_cache[1])

    def _write_index(self, index: dict[str, Any]) -> None:
        write_json(self.dir / "index.json", index)
        self._index_cache = None

    def add_image(self, config: bytes, layers: list[LayerBlob], tags: list[str]) -> Image:
        """Record an image whose layer blobs are stored; unpack its layers; move its tags."""
        with self._lock:
            cfg = json.loads(config)
            diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
            if len(diff_ids) != len(layers):
                raise BadParameter("image config lists a different number of layers than its manifest")
            for diff_id, blob in zip(diff_ids, layers, strict=True):
                self.ensure_layer(diff_id, blob.digest)
            config_blob = self.put_bytes(config)
            manifest = {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "digest": config_blob.digest,
                           "size": config_blob.size},
                "layers": [{"mediaType": b.media_type or LAYER_TAR, "digest": b.digest,
                            "size": b.size} for b in layers],
            }
            mblob = self.put_bytes(json.dumps(manifest, sort_keys=True).encode())
            names = [normalize(t) for t in tags]
            index = self._index()
            kept = [
                m for m in index["manifests"]
                if (m.get("annotations") or {}).get(REF_NAME) not in names
                and not (m["digest"] == mblob.digest and not m.get("annotations"))
            ]
            descriptor = {"mediaType": MANIFEST_TYPE, "digest": mblob.digest, "size": mblob.size}
            if names:
                kept += [{**descriptor, "annotations": {REF_NAME: n}} for n in names]
            elif not any(m["digest"] == mblob.digest for m in kept):
                kept.append(descriptor)
            for m in index["manifests"]:  # images that lost their last name stay, dangling
                if m["digest"] != mblob.digest and not any(k["digest"] == m["digest"] for k in kept):
                    kept.append({key: m[key] for key in ("mediaType", "digest", "size")})
            index["manifests"] = kept
            self._write_index(index)
            return self._load_image(mblob.digest, names)

    def _load_image(self, manifest_digest: str, tags: list[str]) -> Image:
        """Blobs are named by their digest, so what one manifest says never changes: it is
        read once. Every lookup (create, start, inspect) used to re-read and parse two
        blobs per image, up to 30 ms under TCG."""
        known = self._known.get(manifest_digest)
        if known is None:
            manifest = read_json(self.blob_path(manifest_digest))
            config_digest = manifest["config"]["digest"]
            config = read_json(self.blob_path(config_digest))
            size = sum(int(layer.get("size", 0)) for layer in manifest.get("layers", []))
            diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
            known = self._known[manifest_digest] = Image(config_digest, manifest_digest, config, diff_ids, size)
        return Image(known.id, manifest_digest, known.config, list(known.diff_ids), known.size, tags)

    def images(self) -> list[Image]:
        with self._lock:
            by_digest: dict[str, list[str]] = {}
            for m in self._index()["manifests"]:
                tags = by_digest.setdefault(m["digest"], [])
                name = (m.get("annotations") or {}).get(REF_NAME)
                if name:
                    tags.append(name)
            return [self._load_image(d, tags) for d, tags in by_digest.items()]

    def resolve(self, ref: str) -> Image:
        """A tag, a full id, or a unique id prefix -> the image (404 otherwise)."""
        images = self.images()
        ref = ref.strip()
        hexref = ref.removeprefix("sha256:")
        if HEX64.match(hexref):
            matches = [i for i in images if i.id.removeprefix("sha256:").startswith(hexref)]
            if len(matches) == 1 and (len(hexref) == 64 or ":" not in ref):
                return matches[0]
        try:
            name = normalize(ref)
        except BadParameter:
            name = ""
        for image in images:
            if name in image.tags:
                return image
        raise NotFound(f"No such image: {name or ref}")

    def layer_dirs(self, image: Image) -> list[Path]:
        """Bottom layer first."""
        return [self.layer_dir(d) for d in image.diff_ids]

    def remove(self, ref: str, in_use: set[str], force: bool = False) -> list[dict[str, str]]:
        """`docker rmi`: untag a name, and delete the image once no name or container holds it."""
        with self._lock:
            image = self.resolve(ref)
            by_tag = ref.strip().removeprefix("sha256:") not in image.id
            index = self._index()
            report: list[dict[str, str]] = []
            if by_tag and len(image.tags) > 1:
                name = normalize(ref)
                index["manifests"] = [m for m in index["manifests"]
                                      if (m.get("annotations") or {}).get(REF_NAME) != name]
                self._write_index(index)
                return [{"Untagged": name}]
            if image.id in in_use and not force:
                raise Conflict(f"conflict: unable to remove image {ref} (must be forced) - "
                               "image is being used by a container")
            index["manifests"] = [m for m in index["manifests"] if m["digest"] != image.manifest_digest]
            report += [{"Untagged": t} for t in image.tags]
            if image.id in in_use:  # forced: containers keep their layers, the image goes dangling
                index["manifests"].append({"mediaType": MANIFEST_TYPE, "digest": image.manifest_digest,
                                           "size": self.blob_path(image.manifest_digest).stat().st_size})
            else:
                report.append({"Deleted": image.id})
            self._write_index(index)
            self.gc(in_use)
            return report

    def forget_dangling(self, manifest_digest: str) -> None:
        """Drop an untagged entry (a build's interim image) from the index; its blobs stay."""
        with self._lock:
            index = self._index()
            index["manifests"] = [m for m in index["manifests"]
                                  if m["digest"] != manifest_digest or m.get("annotations")]
            self._write_index(index)

    def gc(self, in_use: set[str]) -> None:
        """Drop blobs and layer dirs no image references any more."""
        with self._lock:
            images = self.images()
            keep_layers = {self.layer_dir(d).name for i in images for d in i.diff_ids}
            keep_blobs: set[str] = set()
            for image in images:
                manifest = read_json(self.blob_path(image.manifest_digest))
                keep_blobs |= {image.manifest_digest, manifest["config"]["digest"]}
                keep_blobs |= {layer["digest"] for layer in manifest["layers"]}
            keep_blobs_hex = {d.partition(":")[2] for d in keep_blobs}
            for blob in self.blobs.iterdir():
                if blob.name not in keep_blobs_hex:
                    blob.unlink()
            for layer in self.layers.iterdir():
                if layer.name not in keep_layers and not layer.name.startswith("."):
                    rmtree(layer)
