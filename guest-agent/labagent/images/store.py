"""Images as an OCI image layout (ROOT/images) plus layers unpacked once (ROOT/layers/<diffid>).

index.json is the record of which manifests exist and which names point at them
(`org.opencontainers.image.ref.name` holds the full `repo:tag`). Blobs are content-addressed;
each layer is unpacked once, by diff id, and shared by every image and container.

A load stages what it adds (Staging): when it fails, the blobs and layers it added that no image
references go again, so a hostile archive leaves the store as it found it.
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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import BadParameter, NotFound
from ..events import Events
from ..fsutil import read_json, rfc3339, rmtree, write_json
from . import reference
from .layers import DEFAULT_LIMITS, HashingReader, Limits, Whiteouts, open_layer, stream_limit, unpack_layer
from .meta import ImageMeta

REF_NAME = "org.opencontainers.image.ref.name"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
HEX64 = re.compile(r"^[0-9a-f]{1,64}$")
MAX_CONFIG = 4 << 20  # bytes in an image config, as containerd bounds its documents


@dataclass
class Image:
    id: str  # sha256 of the config blob, as Docker shows it
    manifest_digest: str
    config: dict[str, Any]
    diff_ids: list[str]
    size: int
    tags: list[str] = field(default_factory=list)
    parent: str = ""  # the image id a build started FROM, or ""

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "1970-01-01T00:00:00Z")

    @property
    def labels(self) -> dict[str, str]:
        labels = (self.config.get("config") or {}).get("Labels")
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


@dataclass(frozen=True)
class LayerBlob:
    digest: str
    size: int
    media_type: str


def normalize(ref: str) -> str:
    """`busybox`, `docker.io/library/busybox` and `busybox:latest` are one name (Docker's rules)."""
    return str(reference.parse(ref.strip()))


def digest_hex(digest: str) -> str:
    """The hex part of a well-formed sha256 digest, or BadParameter."""
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or not HEX64.match(hexdigest) or len(hexdigest) != 64:
        raise BadParameter(f"invalid digest {digest[:80]!r}")
    return hexdigest


@dataclass
class Staging:
    """What one load touched: held (in use, so no other failing load or gc removes it) and added."""

    blobs: set[str] = field(default_factory=set)
    layers: set[str] = field(default_factory=set)
    added_blobs: set[str] = field(default_factory=set)
    added_layers: set[str] = field(default_factory=set)


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
        self.limits: Limits = DEFAULT_LIMITS
        self.events = Events()  # the engine's bus replaces this one
        self.meta = ImageMeta(self.dir / "lab-meta.json")  # parents and tag times, beside the index
        self._stagings: list[Staging] = []
        self._lock = threading.RLock()
        self._known: dict[str, Image] = {}  # by manifest digest; configs are shared, not copied
        self._index_cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        for path in (self.blobs, self.layers, self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        self._sweep()
        if not (self.dir / "oci-layout").exists():
            write_json(self.dir / "oci-layout", {"imageLayoutVersion": "1.0.0"})
        if not (self.dir / "index.json").exists():
            write_json(self.dir / "index.json", {"schemaVersion": 2, "manifests": []})

    def _sweep(self) -> None:
        """Unpacks and blob copies a crash cut short: only this store makes these names."""
        for stale in [*self.layers.glob(".tmp-*"), *self.tmp.glob("blob-*")]:
            rmtree(stale)

    def exclusive(self) -> AbstractContextManager[Any]:
        """The store's own lock: whoever holds it (a build at start-up) makes lookups wait."""
        return self._lock

    # blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest_hex(digest)

    def _place(self, tmp: Path, digest: str, staging: Staging | None,
               refill: Callable[[Path], object] | None = None) -> Path:
        """Rename a checked temporary file into the blob store, unless the blob is there already.

        refill writes tmp when the caller skipped it because the blob existed, and gc removed it since.
        """
        path = self.blob_path(digest)
        with self._lock:  # gc must not run between the rename and the staging's record of it
            if staging is not None:
                staging.blobs.add(digest)
            if not path.exists():
                if refill is not None and not tmp.exists():
                    refill(tmp)
                os.replace(tmp, path)
                if staging is not None:
                    staging.added_blobs.add(digest)
        return path

    def put_bytes(self, data: bytes, staging: Staging | None = None) -> LayerBlob:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        tmp = self.tmp / f"blob-{secrets.token_hex(8)}"
        try:
            if not self.blob_path(digest).exists():
                tmp.write_bytes(data)
            self._place(tmp, digest, staging, lambda dst: dst.write_bytes(data))
        finally:
            rmtree(tmp)
        return LayerBlob(digest, len(data), "")

    def put_file(self, src: Path, staging: Staging | None = None) -> LayerBlob:
        """Copy a file into the blob store under its own digest."""
        digest = sha256_file(src)
        tmp = self.tmp / f"blob-{secrets.token_hex(8)}"
        try:
            if not self.blob_path(digest).exists():
                shutil.copyfile(src, tmp)
            path = self._place(tmp, digest, staging, lambda dst: shutil.copyfile(src, dst))
        finally:
            rmtree(tmp)
        return LayerBlob(digest, path.stat().st_size, "")

    def put_stream(self, src: IO[bytes], expect: str | None = None, size: int | None = None,
                   staging: Staging | None = None) -> LayerBlob:
        """Copy a stream into the blob store; checked against its descriptor before it lands there."""
        if expect is not None:
            self.blob_path(expect)  # a well-formed sha256 digest, or BadParameter
        digest = hashlib.sha256()
        written = 0
        tmp = self.tmp / f"blob-{secrets.token_hex(8)}"
        try:
            with open(tmp, "xb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if size is not None and written > size:
                        raise BadParameter(f"the blob is larger than the {size} bytes its descriptor says")
                    digest.update(chunk)
                    out.write(chunk)
            got = "sha256:" + digest.hexdigest()
            if size is not None and written != size:
                raise BadParameter(f"the blob holds {written} bytes, its descriptor says {size}")
            if expect is not None and got != expect:
                raise BadParameter(f"the blob has digest {got}, its descriptor says {expect}")
            self._place(tmp, got, staging)
        finally:
            rmtree(tmp)
        return LayerBlob(got, written, "")

    # staging ---------------------------------------------------------------------------
    @contextmanager
    def staging(self) -> Iterator[Staging]:
        """A load's record of what it adds; if the load fails, what no image references goes."""
        stage = Staging()
        with self._lock:
            self._stagings.append(stage)
        try:
            yield stage
        except BaseException:
            with self._lock:
                self._stagings.remove(stage)
                self._discard(stage)
            raise
        with self._lock:
            self._stagings.remove(stage)

    def _held(self) -> tuple[set[str], set[str]]:
        """Blob digests and layer dir names that an image or a live staging holds."""
        blobs: set[str] = set()
        layers: set[str] = set()
        for image in self.images():
            manifest = read_json(self.blob_path(image.manifest_digest))
            blobs |= {image.manifest_digest, manifest["config"]["digest"]}
            blobs |= {layer["digest"] for layer in manifest["layers"]}
            layers |= {self.layer_dir(d).name for d in image.diff_ids}
        for stage in self._stagings:
            blobs |= stage.blobs
            layers |= stage.layers
        return blobs, layers

    def _discard(self, stage: Staging) -> None:
        blobs, layers = self._held()
        for digest in stage.added_blobs - blobs:
            rmtree(self.blob_path(digest))
        for name in stage.added_layers - layers:
            rmtree(self.layers / name)

    # layers ----------------------------------------------------------------------------
    def layer_dir(self, diff_id: str) -> Path:
        return self.layers / self.blob_path(diff_id).name

    def ensure_layer(self, diff_id: str, blob_digest: str, staging: Staging | None = None) -> Path:
        """Unpack a layer blob once; a second image with the same diff id reuses it.

        The unpack goes to a temporary directory renamed into place once the stream's digest
        matched the diff id, so a failing layer leaves no directory under layers/.
        """
        dest = self.layer_dir(diff_id)
        with self._lock:
            if staging is not None:
                staging.layers.add(dest.name)
            if dest.exists():
                return dest
            tmp = self.layers / f".tmp-{secrets.token_hex(8)}"
            tmp.mkdir()
            try:
                with open_layer(self.blob_path(blob_digest)) as stream:
                    reader = HashingReader(stream, stream_limit(self.limits, tmp))
                    unpack_layer(reader, tmp, self.whiteouts, limits=self.limits)
                    got = reader.drain()
                if got != diff_id:
                    raise BadParameter(f"layer {blob_digest} has diff id {got}, config says {diff_id}")
                os.rename(tmp, dest)
                if staging is not None:
                    staging.added_layers.add(dest.name)
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

    @staticmethod
    def parse_config(config: bytes) -> tuple[dict[str, Any], list[str]]:
        """An image config and its diff ids, or BadParameter naming what is wrong."""
        if len(config) > MAX_CONFIG:
            raise BadParameter(f"the image config is {len(config)} bytes, more than {MAX_CONFIG}")
        try:
            cfg = json.loads(config)
        except (ValueError, RecursionError) as exc:
            raise BadParameter(f"the image config is not valid JSON: {exc}") from None
        rootfs = cfg.get("rootfs") if isinstance(cfg, dict) else None
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
            raise BadParameter("the image config is not an object with rootfs.diff_ids, a list of digests")
        for diff_id in diff_ids:
            try:
                digest_hex(diff_id)
            except BadParameter:
                raise BadParameter(f"the image config's rootfs.diff_ids holds {diff_id[:80]!r}, "
                                   "not a sha256 digest") from None
        return cfg, diff_ids

    def add_image(self, config: bytes, layers: list[LayerBlob], tags: list[str],
                  staging: Staging | None = None, parent: str = "") -> Image:
        """Record an image whose layer blobs are stored; unpack its layers; move its tags.

        An image whose config is already stored keeps its manifest: one image id is one image,
        whatever compression the second copy of its layers came in.
        """
        with self._lock:
            _, diff_ids = self.parse_config(config)
            if len(diff_ids) != len(layers):
                raise BadParameter("image config lists a different number of layers than its manifest")
            names = [normalize(t) for t in tags]
            for diff_id, blob in zip(diff_ids, layers, strict=True):
                self.ensure_layer(diff_id, blob.digest, staging)
            config_blob = self.put_bytes(config, staging)
            same = [i for i in self.images() if i.id == config_blob.digest]
            if same:
                mblob = LayerBlob(same[0].manifest_digest,
                                  self.blob_path(same[0].manifest_digest).stat().st_size, MANIFEST_TYPE)
                if staging is not None:
                    staging.blobs.add(mblob.digest)
            else:
                manifest = {
                    "schemaVersion": 2,
                    "mediaType": MANIFEST_TYPE,
                    "config": {"mediaType": CONFIG_TYPE, "digest": config_blob.digest,
                               "size": config_blob.size},
                    "layers": [{"mediaType": b.media_type or LAYER_TAR, "digest": b.digest,
                                "size": b.size} for b in layers],
                }
                mblob = self.put_bytes(json.dumps(manifest, sort_keys=True).encode(), staging)
            if parent:
                self.meta.set_parent(config_blob.digest, parent)
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
            if names:
                self.meta.tagged(config_blob.digest, rfc3339())
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
        return Image(known.id, manifest_digest, known.config, list(known.diff_ids), known.size, tags,
                     self.meta.parent(known.id))

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

    def manifest_layers(self, image: Image) -> list[LayerBlob]:
        """The image's layer blobs as its manifest lists them, bottom first."""
        manifest = read_json(self.blob_path(image.manifest_digest))
        return [LayerBlob(m["digest"], m["size"], m.get("mediaType", LAYER_TAR)) for m in manifest["layers"]]

    def layer_dirs(self, image: Image) -> list[Path]:
        """Bottom layer first."""
        return [self.layer_dir(d) for d in image.diff_ids]

    # names -----------------------------------------------------------------------------
    def emit(self, action: str, image: Image, name: str = "") -> None:
        """An image event as dockerd logs it: the image's labels, and `name` (its id by default)."""
        attributes = {k: v for k, v in image.labels.items() if k not in ("type_", "action", "actor_id")}
        attributes["name"] = name or image.id
        self.events.emit("image", action, image.id, **attributes)

    def tag(self, image: Image, ref: reference.Reference) -> None:
        """Point a name at an image; the image that had the name keeps its other names."""
        name = str(ref)
        with self._lock:
            index = self._index()
            old = [m for m in index["manifests"] if (m.get("annotations") or {}).get(REF_NAME) == name]
            index["manifests"] = [m for m in index["manifests"] if m not in old]
            index["manifests"] = [m for m in index["manifests"]
                                  if m["digest"] != image.manifest_digest or m.get("annotations")]
            for m in old:  # the image that lost the name stays, dangling if it has no other
                if m["digest"] != image.manifest_digest and not any(k["digest"] == m["digest"]
                                                                     for k in index["manifests"]):
                    index["manifests"].append({key: m[key] for key in ("mediaType", "digest", "size")})
            index["manifests"].append({"mediaType": MANIFEST_TYPE, "digest": image.manifest_digest,
                                       "size": self.blob_path(image.manifest_digest).stat().st_size,
                                       "annotations": {REF_NAME: name}})
            self._write_index(index)
            self.meta.tagged(image.id, rfc3339())
        self.emit("tag", image, name)

    def untag(self, image: Image, name: str) -> None:
        """Drop one name; an image left with none stays in the index, dangling."""
        with self._lock:
            index = self._index()
            index["manifests"] = [m for m in index["manifests"]
                                  if (m.get("annotations") or {}).get(REF_NAME) != name]
            if not any(m["digest"] == image.manifest_digest for m in index["manifests"]):
                index["manifests"].append({"mediaType": MANIFEST_TYPE, "digest": image.manifest_digest,
                                           "size": self.blob_path(image.manifest_digest).stat().st_size})
            self._write_index(index)
        self.emit("untag", image)

    def children(self, image_id: str) -> list[Image]:
        """The stored images whose parent is image_id."""
        return [i for i in self.images() if i.parent == image_id]

    def by_id(self, image_id: str) -> Image | None:
        return next((i for i in self.images() if i.id == image_id), None)

    def delete(self, image: Image) -> tuple[list[str], int]:
        """Drop an image (all its names) and what only it held: the diff ids and bytes freed."""
        with self._lock:
            index = self._index()
            index["manifests"] = [m for m in index["manifests"] if m["digest"] != image.manifest_digest]
            self._write_index(index)
            self.meta.forget(image.id)
            freed_layers, freed = self.gc(set())
        self.emit("delete", image)
        return [d for d in image.diff_ids if self.layer_dir(d).name in freed_layers], freed

    def forget_dangling(self, manifest_digest: str) -> None:
        """Drop an untagged entry (a build's interim image) from the index; its blobs stay."""
        with self._lock:
            index = self._index()
            index["manifests"] = [m for m in index["manifests"]
                                  if m["digest"] != manifest_digest or m.get("annotations")]
            self._write_index(index)

    def gc(self, in_use: set[str]) -> tuple[set[str], int]:
        """Drop blobs and layer dirs no image (nor a load under way) references any more.

        Returns the layer dir names removed and the bytes of the blobs removed.
        """
        freed, layers = 0, set()
        with self._lock:
            keep_blobs, keep_layers = self._held()
            keep_blobs_hex = {d.partition(":")[2] for d in keep_blobs}
            for blob in self.blobs.iterdir():
                if blob.name not in keep_blobs_hex:
                    freed += blob.lstat().st_size
                    blob.unlink()
            for layer in self.layers.iterdir():
                if layer.name not in keep_layers and not layer.name.startswith("."):
                    rmtree(layer)
                    layers.add(layer.name)
        return layers, freed
