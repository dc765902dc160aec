"""`docker load`: import a docker-save or OCI-layout tarball into the image store.

The archive is a stranger's. Names its documents give (manifest.json's Config and Layers, a
blob's digest) are looked up among the archive's own members only, symlink members followed
inside the archive; every document is size-bounded before it is parsed, and every blob is
checked against its descriptor (digest, size, media type) before it is used. Index nesting is
bounded. The whole load is staged: an archive that fails leaves no blob or layer behind.
"""

from __future__ import annotations

import hashlib
import json
import platform
import posixpath
import re
import tarfile
import zlib
from pathlib import Path
from typing import IO, Any

from ..beneath import clean_relpath
from ..errors import BadParameter
from .layers import DEFAULT_LIMITS, bounded_tarinfo, next_member
from .store import LAYER_GZIP, LAYER_TAR, REF_NAME, ImageStore, LayerBlob, Staging, digest_hex, normalize

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")
LAYER_TYPES = (LAYER_TAR, LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar.gzip",
               "application/vnd.oci.image.layer.nondistributable.v1.tar",
               "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
ZSTD_TYPES = ("application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.zstd")
CONTAINERD_NAME = "io.containerd.image.name"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

MAX_DOCUMENT = 4 << 20  # bytes in index.json, manifest.json, a manifest or a config (containerd's bound)
MAX_MEMBERS = 100_000  # an archive holds a few members per layer and image
MAX_INDEX_DEPTH = 4  # an index of indexes of ... manifests; real ones nest once
MAX_LINK_HOPS = 8  # symlink and hard link members followed to reach a file
DIGEST_NAME = re.compile(r"blobs/sha256/([0-9a-f]{64})|([0-9a-f]{64})\.json")


def _digest_of_name(name: object) -> str | None:
    """The digest a docker-save member name carries (`<hex>.json`, `blobs/sha256/<hex>`), if any;
    a legacy `<id>/layer.tar` carries none (its id is not its content's digest)."""
    try:
        rel = clean_relpath(name) if isinstance(name, str) else ""
    except BadParameter:
        return None  # find() refuses it with the field's name
    match = DIGEST_NAME.fullmatch(rel)
    return "sha256:" + (match.group(1) or match.group(2)) if match else None


class Archive:
    """Random access to a tarball's regular files by cleaned name; links resolved inside it."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members: dict[str, tarfile.TarInfo] = {}
        while True:
            member = next_member(tar, "not a valid tar archive")
            if member is None:
                break
            if len(self.members) >= MAX_MEMBERS:
                raise BadParameter(f"the archive holds more than {MAX_MEMBERS} members")
            try:
                self.members[clean_relpath(member.name)] = member
            except BadParameter:
                raise BadParameter(f"the archive's member {member.name[:200]!r} escapes the archive") from None

    def has(self, name: str) -> bool:
        return name in self.members

    def find(self, name: object, field: str) -> tarfile.TarInfo:
        """The regular file a document names, following links among the archive's members only."""
        if not isinstance(name, str) or not name:
            raise BadParameter(f"{field} is not a file name")
        try:
            rel = clean_relpath(name)
        except BadParameter:
            raise BadParameter(f"{field}: {name[:200]!r} is not a file of the archive") from None
        for _ in range(MAX_LINK_HOPS + 1):
            member = self.members.get(rel)
            if member is None:
                raise BadParameter(f"{field}: the archive has no file {name[:200]!r}")
            if member.isreg():
                return member
            if member.issym():  # read in the archive as in a chroot: `/x` is the archive's x
                target = member.linkname if member.linkname.startswith("/") else \
                    posixpath.join(posixpath.dirname(rel), member.linkname)
                rel = posixpath.normpath("/" + target).lstrip("/")
            elif member.islnk():
                rel = posixpath.normpath("/" + member.linkname).lstrip("/")
            else:
                raise BadParameter(f"{field}: {name[:200]!r} is not a regular file of the archive")
        raise BadParameter(f"{field}: {name[:200]!r} goes through more than {MAX_LINK_HOPS} links")

    def _open(self, member: tarfile.TarInfo) -> IO[bytes]:
        handle = self.tar.extractfile(member)
        assert handle is not None  # find() returns regular files only
        return handle

    def read(self, name: object, field: str, digest: str | None = None, size: int | None = None) -> bytes:
        """A document's bytes: bounded before they are read, checked against a descriptor if given."""
        member = self.find(name, field)
        if member.size > MAX_DOCUMENT:
            raise BadParameter(f"{field} is {member.size} bytes, more than the {MAX_DOCUMENT} a document may hold")
        if size is not None and member.size != size:
            raise BadParameter(f"{field} is {member.size} bytes, its descriptor says {size}")
        try:
            data = self._open(member).read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise BadParameter(f"{field} cannot be read from the archive: {exc}") from None
        if digest is not None:
            got = "sha256:" + hashlib.sha256(data).hexdigest()
            if got != digest:
                raise BadParameter(f"{field} has digest {got}, its descriptor says {digest}")
        return data

    def json(self, name: object, field: str, digest: str | None = None, size: int | None = None) -> Any:
        data = self.read(name, field, digest, size)
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise BadParameter(f"{field} is not valid JSON: {str(exc)[:200]}") from None

    def to_blob(self, store: ImageStore, name: object, field: str, staging: Staging,
                digest: str | None = None, size: int | None = None) -> LayerBlob:
        """Copy a layer into the blob store, checked against its descriptor before it lands there."""
        member = self.find(name, field)
        if size is not None and member.size != size:
            raise BadParameter(f"{field} is {member.size} bytes, its descriptor says {size}")
        try:
            with self._open(member) as src:
                blob = store.put_stream(src, digest, size, staging)
        except BadParameter as exc:
            raise BadParameter(f"{field}: {exc.message}") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise BadParameter(f"{field} cannot be read from the archive: {exc}") from None
        with open(store.blob_path(blob.digest), "rb") as handle:
            magic = handle.read(4)
        if magic == b"\x28\xb5\x2f\xfd":
            raise BadParameter(f"{field} is zstd-compressed: use gzip or plain tar")
        return LayerBlob(blob.digest, blob.size, LAYER_GZIP if magic[:2] == b"\x1f\x8b" else LAYER_TAR)


def load_archive(store: ImageStore, path: Path) -> list[str]:
    """Load every image in the tarball; return Docker's "Loaded image: ..." lines."""
    try:
        tar = tarfile.open(path, "r:*", tarinfo=bounded_tarinfo(DEFAULT_LIMITS))  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BadParameter(f"not a tar archive: {exc}") from None
    with tar, store.staging() as staging:
        archive = Archive(tar)
        if archive.has("manifest.json"):
            return _load_docker(store, archive, staging)
        if archive.has("index.json"):
            return _load_oci(store, archive, staging)
    raise BadParameter("not an image archive: it has neither manifest.json (docker save) "
                       "nor index.json (OCI layout)")


def _messages(image_id: str, tags: list[str]) -> list[str]:
    return [f"Loaded image: {t}" for t in tags] or [f"Loaded image ID: {image_id}"]


def _strings(value: object, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameter(f"{field} is not a list of strings")
    return value


def _tags(names: list[str], field: str) -> list[str]:
    """The names checked before anything is stored, so a bad one costs nothing."""
    for name in names:
        try:
            normalize(name)
        except BadParameter as exc:
            raise BadParameter(f"{field}: {exc.message}") from None
    return names


def _load_docker(store: ImageStore, archive: Archive, staging: Staging) -> list[str]:
    entries = archive.json("manifest.json", "manifest.json")
    if not isinstance(entries, list):
        raise BadParameter("manifest.json is not a list of images")
    lines: list[str] = []
    parents: list[tuple[Any, object]] = []
    for i, entry in enumerate(entries):
        field = f"manifest.json[{i}]"
        if not isinstance(entry, dict):
            raise BadParameter(f"{field} is not an object")
        tags = _tags(_strings(entry.get("RepoTags"), f"{field}.RepoTags"), f"{field}.RepoTags")
        name = entry.get("Config")
        config = archive.read(name, f"{field}.Config", _digest_of_name(name))
        layers = [archive.to_blob(store, layer, f"{field}.Layers[{j}]", staging, _digest_of_name(layer))
                  for j, layer in enumerate(_strings(entry.get("Layers"), f"{field}.Layers"))]
        image = _add(store, config, layers, tags, staging, field, lines)
        parents.append((image, entry.get("Parent")))
        lines += _messages(image.id, image.tags)
    for image, parent in parents:
        _link_parent(store, image, parent)
    return lines


def _link_parent(store: ImageStore, image: Any, parent: object) -> None:
    """manifest.json's Parent, kept only if it names a stored image whose layers the child's start with."""
    if not isinstance(parent, str) or parent == image.id:
        return
    found = store.by_id(parent)
    if found is not None and image.diff_ids[:len(found.diff_ids)] == found.diff_ids:
        store.meta.set_parent(image.id, found.id)


def _renames(store: ImageStore, config: bytes, tags: list[str]) -> list[str]:
    """dockerd's word for a name the load takes from another image (which keeps its other names)."""
    new_id = "sha256:" + hashlib.sha256(config).hexdigest()
    names = {normalize(t) for t in tags}
    return [f"The image {name} already exists, renaming the old one with ID {image.id} to empty string"
            for image in store.images() for name in image.tags if name in names and image.id != new_id]


def _add(store: ImageStore, config: bytes, layers: list[LayerBlob], tags: list[str], staging: Staging,
         field: str, lines: list[str]) -> Any:
    lines += _renames(store, config, tags)
    try:
        image = store.add_image(config, layers, tags, staging)
    except BadParameter as exc:
        raise BadParameter(f"{field}: {exc.message}") from None
    store.emit("load", image)
    return image


def _descriptor(value: object, field: str, media_types: tuple[str, ...]) -> tuple[str, str, int]:
    """A descriptor's media type, digest and size, each checked; the blob is not read here."""
    if not isinstance(value, dict):
        raise BadParameter(f"{field} is not a descriptor object")
    media, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if media in ZSTD_TYPES:
        raise BadParameter(f"{field} is a zstd-compressed layer: use gzip or plain tar")
    if media not in media_types:
        raise BadParameter(f"{field} has media type {repr(media)[:100]}, not one of {', '.join(media_types)}")
    if not isinstance(digest, str):
        raise BadParameter(f"{field} has no digest")
    try:
        digest_hex(digest)
    except BadParameter:
        raise BadParameter(f"{field} has digest {digest[:100]!r}: only sha256 digests are supported") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadParameter(f"{field} has no valid size")
    return media, digest, size


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


def _pick_manifest(archive: Archive, descriptor: object, field: str) -> tuple[dict[str, Any], str]:
    """Follow nested indexes down to one manifest, preferring this machine's platform.

    Each document is checked against the descriptor that named it, so an index cannot list
    itself (its digest would be in its own text); the depth bound and the seen set say so plainly.
    """
    seen: set[str] = set()
    for _ in range(MAX_INDEX_DEPTH + 1):
        media, digest, size = _descriptor(descriptor, field, INDEX_TYPES + MANIFEST_TYPES)
        if digest in seen:
            raise BadParameter(f"{field}: image index {digest} lists itself")
        seen.add(digest)
        document = archive.json(_blob_name(digest), f"{field} ({digest[:19]})", digest, size)
        if not isinstance(document, dict):
            raise BadParameter(f"{field} ({digest[:19]}) is not a JSON object")
        said = document.get("mediaType")
        if said is not None and (said in INDEX_TYPES) != (media in INDEX_TYPES):
            raise BadParameter(f"{field} ({digest[:19]}) says it is {str(said)[:100]!r}, its descriptor {media!r}")
        if media in MANIFEST_TYPES:
            return document, f"{field} ({digest[:19]})"
        manifests = document.get("manifests")
        if not isinstance(manifests, list) or not manifests:
            raise BadParameter(f"{field}: the image index {digest[:19]} lists no manifests")
        native = [m for m in manifests if isinstance(m, dict) and isinstance(m.get("platform"), dict)
                  and m["platform"].get("architecture") == ARCH and m["platform"].get("os", "linux") == "linux"]
        descriptor = (native or manifests)[0]
        field = f"{field} -> {digest[:19]}"
    raise BadParameter(f"{field}: image indexes nest more than {MAX_INDEX_DEPTH} deep")


def _load_oci(store: ImageStore, archive: Archive, staging: Staging) -> list[str]:
    index = archive.json("index.json", "index.json")
    if not isinstance(index, dict):
        raise BadParameter("index.json is not a JSON object")
    descriptors = index.get("manifests")
    if not isinstance(descriptors, list):
        raise BadParameter("index.json has no manifests list")
    lines: list[str] = []
    for i, descriptor in enumerate(descriptors):
        field = f"index.json manifests[{i}]"
        notes = descriptor.get("annotations") if isinstance(descriptor, dict) else None
        notes = notes if isinstance(notes, dict) else {}
        name = notes.get(CONTAINERD_NAME) or notes.get(REF_NAME)
        tags = _tags([name] if isinstance(name, str) and name else [], f"{field} annotations")
        manifest, where = _pick_manifest(archive, descriptor, field)
        _, config_digest, config_size = _descriptor(manifest.get("config"), f"{where} config", CONFIG_TYPES)
        config = archive.read(_blob_name(config_digest), f"{where} config", config_digest, config_size)
        layer_list = manifest.get("layers")
        if not isinstance(layer_list, list):
            raise BadParameter(f"{where} has no layers list")
        layers = []
        for j, layer in enumerate(layer_list):
            _, digest, size = _descriptor(layer, f"{where} layers[{j}]", LAYER_TYPES)
            layers.append(archive.to_blob(store, _blob_name(digest), f"{where} layers[{j}]", staging,
                                          digest, size))
        image = _add(store, config, layers, tags, staging, where, lines)
        lines += _messages(image.id, image.tags)
    return lines
