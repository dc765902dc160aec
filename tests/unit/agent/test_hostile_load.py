"""Hostile `docker load` archives against the real loader and store: each is refused with one
clear BadParameter, nothing outside the store changes, and the store is as it was (other images
whole, no new blob, layer dir or temporary file)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labagent.errors import BadParameter
from labagent.images import load as imageload
from labagent.images.layers import Whiteouts
from labagent.images.load import load_archive
from labagent.images.store import ImageStore

from .conftest import sha, tar_bytes
from .hostile import Entry, plant, snapshot, tar_of

BASE = tar_bytes({"etc/": None, "etc/os": b"base\n"})
TOP = tar_bytes({"app/": None, "app/run": b"go\n"})
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def config_of(layers: list[bytes]) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                       "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in layers]}}).encode()


def docker_files(images: list[tuple[list[bytes], list[str]]]) -> dict[str, bytes | None]:
    """docker-save members for several images: <hex>.json configs, <hex>/layer.tar layers."""
    files: dict[str, bytes | None] = {}
    entries = []
    for layers, tags in images:
        config = config_of(layers)
        files[f"{sha(config)[7:]}.json"] = config
        names = []
        for layer in layers:
            names.append(f"{sha(layer)[7:]}/layer.tar")
            files[names[-1]] = layer
        entries.append({"Config": f"{sha(config)[7:]}.json", "RepoTags": tags, "Layers": names})
    files["manifest.json"] = json.dumps(entries).encode()
    return files


class Oci:
    """An OCI layout built blob by blob, so a test can break any one of them."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | None] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}

    def put(self, data: bytes, media: str) -> dict[str, Any]:
        self.files[f"blobs/sha256/{sha(data)[7:]}"] = data
        return {"mediaType": media, "digest": sha(data), "size": len(data)}

    def image(self, layers: list[bytes], gz: bool = True) -> dict[str, Any]:
        descs = [self.put(gzip.compress(x, mtime=0) if gz else x,
                          "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")) for x in layers]
        config = self.put(config_of(layers), "application/vnd.oci.image.config.v1+json")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                               "layers": descs}).encode()
        return self.put(manifest, OCI_MANIFEST)

    def index(self, *manifests: dict[str, Any]) -> dict[str, Any]:
        return self.put(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                    "manifests": list(manifests)}).encode(), OCI_INDEX)

    def archive(self, *descriptors: dict[str, Any], ref: str = "hostile:1") -> bytes:
        tops = [{**d, "annotations": {"org.opencontainers.image.ref.name": ref}} for d in descriptors]
        self.files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": tops}).encode()
        return tar_bytes(self.files)


def state(root: Path) -> dict[str, object]:
    """Every file of the store with its content and mode; directory times left out."""
    seen: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() \
            else os.readlink(path) if path.is_symlink() else None
        seen[str(path.relative_to(root))] = (st.st_mode, st.st_uid, content)
    return seen


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    """A store holding base:1 in tmp/node, with sentinels beside it (archives go to tmp/in);
    afterwards nothing outside the store changed."""
    node = tmp_path / "node"
    store = ImageStore(node / "root", Whiteouts())
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "base.tar"
    path.write_bytes(tar_bytes(docker_files([([BASE], ["base:1"])])))
    load_archive(store, path)
    plant(node)
    before = snapshot(node, skip=node / "root")
    yield store
    assert snapshot(node, skip=node / "root") == before
    assert (store.layer_dirs(store.resolve("base:1"))[0] / "etc/os").read_bytes() == b"base\n"
    assert list(store.tmp.iterdir()) == []
    assert [p.name for p in store.layers.iterdir() if p.name.startswith(".")] == []


def refused(store: ImageStore, data: bytes, match: str) -> None:
    """The load fails with match, and the store is exactly as it was."""
    before = state(store.dir.parent)
    path = store.dir.parent.parent.parent / "in" / "hostile.tar"
    path.write_bytes(data)
    with pytest.raises(BadParameter, match=match):
        load_archive(store, path)
    assert state(store.dir.parent) == before


# hostile layers through a load -----------------------------------------------------------
@pytest.mark.parametrize("entries, match", [
    ([Entry("a/", "dir"), Entry(".wh...", "file")], "whiteout of '..'"),
    ([Entry("a/", "dir"), Entry("a/.wh.", "file")], "whiteout of ''"),
    ([Entry("d", "sym", link="{outside}"), Entry("lnk", "link", link="d/shadow")], "goes through a symlink"),
    ([Entry("d", "sym", link="{outside}"), Entry("d/cron", data=b"* * * * * root sh")], "goes through a sym"),
    ([Entry("lnk", "link", link="../../../outside/shadow")], "escapes"),
])
def test_hostile_layers_leave_the_store_as_it_was(store: ImageStore, tmp_path: Path, entries: list[Entry],
                                                  match: str) -> None:
    for entry in entries:
        entry.link = entry.link.format(outside=tmp_path / "node" / "outside")
    refused(store, tar_bytes(docker_files([([TOP, tar_of(*entries)], ["evil:1"])])), match)


def test_a_replayed_dir_through_a_symlink_loads_and_touches_nothing_outside(store: ImageStore,
                                                                             tmp_path: Path) -> None:
    layer = tar_of(Entry("a/", "dir", mode=0o777, mtime=0), Entry("a", "sym", link=str(tmp_path / "node" / "outside")))
    path = tmp_path / "in" / "replay.tar"
    path.write_bytes(tar_bytes(docker_files([([layer], ["replay:1"])])))
    assert load_archive(store, path) == ["Loaded image: replay:1"]


def test_a_later_image_failing_keeps_the_earlier_one_and_drops_its_own(store: ImageStore, tmp_path: Path) -> None:
    bad = tar_of(Entry(".wh...", "file"))
    path = tmp_path / "in" / "two.tar"
    path.write_bytes(tar_bytes(docker_files([([TOP], ["good:1"]), ([BASE, tar_bytes({"x": b"1"}), bad], ["bad:1"])])))
    with pytest.raises(BadParameter, match="whiteout"):
        load_archive(store, path)
    assert store.resolve("good:1").diff_ids == [sha(TOP)]
    layer_dirs = {p.name for p in store.layers.iterdir()}
    assert layer_dirs == {sha(BASE)[7:], sha(TOP)[7:]}
    blobs = {p.name for p in store.blobs.iterdir()}
    assert sha(bad)[7:] not in blobs and sha(tar_bytes({"x": b"1"}))[7:] not in blobs


def test_a_diff_id_mismatch_leaves_no_layer_and_no_blob(store: ImageStore) -> None:
    files = docker_files([([TOP], ["liar:1"])])
    name = next(n for n in files if n.endswith("layer.tar"))
    files[name] = tar_bytes({"app/": None, "app/run": b"swapped\n"})
    refused(store, tar_bytes(files), "diff id")


# image documents ---------------------------------------------------------------------------
def test_an_index_that_lists_itself_fails_fast(store: ImageStore) -> None:
    oci = Oci()
    fake = "sha256:" + "ab" * 32
    oci.files[f"blobs/sha256/{'ab' * 32}"] = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX,
         "manifests": [{"mediaType": OCI_INDEX, "digest": fake, "size": 0}]}).encode()
    size = len(oci.files[f"blobs/sha256/{'ab' * 32}"] or b"")
    start = time.monotonic()
    refused(store, oci.archive({"mediaType": OCI_INDEX, "digest": fake, "size": size}), "has digest")
    assert time.monotonic() - start < 5


def test_index_nesting_is_bounded(store: ImageStore, tmp_path: Path) -> None:
    oci = Oci()
    desc = oci.image([TOP])
    for _ in range(2):
        desc = oci.index(desc)
    path = tmp_path / "in" / "nested.tar"
    path.write_bytes(oci.archive(desc, ref="nested:1"))
    assert load_archive(store, path) == ["Loaded image: nested:1"]
    oci = Oci()
    desc = oci.image([tar_bytes({"deep": b"d"})])
    for _ in range(5):
        desc = oci.index(desc)
    refused(store, oci.archive(desc), "nest more than 4 deep")


@pytest.mark.parametrize("target", ["manifest", "config", "layer"])
def test_every_blob_is_checked_against_its_descriptor(store: ImageStore, target: str) -> None:
    layer = tar_bytes({"new": b"n"})
    for tamper in ("digest", "size"):
        oci = Oci()
        desc = oci.image([layer])
        manifest = json.loads(oci.files[f"blobs/sha256/{desc['digest'][7:]}"] or b"")
        wanted = {"manifest": desc, "config": manifest["config"], "layer": manifest["layers"][0]}[target]
        name = f"blobs/sha256/{wanted['digest'][7:]}"
        data = oci.files[name] or b""
        oci.files[name] = (data[:-1] + bytes([data[-1] ^ 1])) if tamper == "digest" else data + b" "
        refused(store, oci.archive(desc), "has digest" if tamper == "digest" else "descriptor says")


@pytest.mark.parametrize("where, media, match", [
    ("config", "text/plain", "media type 'text/plain'"),
    ("layer", "application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
    ("layer", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "media type"),
    ("top", None, "media type None"),
    ("top", "application/vnd.oci.image.config.v1+json", "media type"),
])
def test_media_types_are_checked(store: ImageStore, where: str, media: str | None, match: str) -> None:
    oci = Oci()
    layer = tar_bytes({"m": b"m"})
    desc = oci.image([layer])
    if where == "top":
        desc = {**desc, "mediaType": media}
    else:
        key = f"blobs/sha256/{desc['digest'][7:]}"
        manifest = json.loads(oci.files.pop(key) or b"")
        if where == "config":
            manifest["config"]["mediaType"] = media
        else:
            manifest["layers"][0]["mediaType"] = media
        desc = oci.put(json.dumps(manifest).encode(), OCI_MANIFEST)
    refused(store, oci.archive(desc), match)


def test_a_document_that_says_it_is_an_index_under_a_manifest_descriptor_is_refused(store: ImageStore) -> None:
    oci = Oci()
    inner = oci.image([tar_bytes({"q": b"q"})])
    index = oci.index(inner)
    refused(store, oci.archive({**index, "mediaType": OCI_MANIFEST}), "says it is")


def test_documents_are_bounded_before_parsing(store: ImageStore) -> None:
    refused(store, tar_bytes({"index.json": b" " * (5 << 20)}), "more than the 4194304")
    refused(store, tar_bytes({"index.json": b"[" * 200_000}), "not valid JSON")
    refused(store, tar_bytes({"manifest.json": b'{"not": "a list"}'}), "not a list")
    refused(store, tar_bytes({"manifest.json": b'[{"Config": 7}]'}), r"Config is not a file name")
    refused(store, tar_bytes({"manifest.json": b'[{"Config": "c.json", "Layers": "x"}]', "c.json": b"{}"}),
            "Layers is not a list")


def test_docker_save_names_resolve_inside_the_archive_only(store: ImageStore, tmp_path: Path) -> None:
    outside = str(tmp_path / "node" / "outside" / "shadow")
    manifest = json.dumps([{"Config": "cfg.json", "RepoTags": ["x:1"], "Layers": []}]).encode()
    for config in ("../../outside/shadow", outside):
        refused(store, tar_bytes({"manifest.json": json.dumps([{"Config": config, "Layers": []}]).encode()}),
                "not a file of the archive|has no file")
    for link in (outside, "../../../outside/shadow", "loop.json"):
        refused(store, tar_of(Entry("manifest.json", data=manifest), Entry("cfg.json", "sym", link=link),
                              Entry("loop.json", "sym", link="cfg.json")), "has no file|more than 8 links")
    refused(store, tar_of(Entry("manifest.json", data=manifest), Entry("cfg.json", "dir")), "not a regular file")
    refused(store, tar_of(Entry("manifest.json", data=manifest), Entry("../evil", data=b"x")), "escapes the archive")


def test_symlinked_members_inside_the_archive_load(store: ImageStore, tmp_path: Path) -> None:
    config = config_of([TOP])
    blob = f"blobs/sha256/{sha(TOP)[7:]}"
    manifest = json.dumps([{"Config": "cfg.json", "RepoTags": ["linked:1"], "Layers": ["abc/layer.tar"]}]).encode()
    path = tmp_path / "in" / "linked.tar"
    path.write_bytes(tar_of(Entry("manifest.json", data=manifest), Entry(blob, data=TOP),
                            Entry(f"blobs/sha256/{sha(config)[7:]}", data=config),
                            Entry("cfg.json", "sym", link=f"/blobs/sha256/{sha(config)[7:]}"),
                            Entry("abc/layer.tar", "sym", link=f"../{blob}")))
    assert load_archive(store, path) == ["Loaded image: linked:1"]


def test_names_that_carry_a_digest_are_checked(store: ImageStore) -> None:
    files = docker_files([([TOP], ["named:1"])])
    config = next(n for n in files if n.endswith(".json") and n != "manifest.json")
    files[config] = config_of([TOP]).replace(b'"sh"', b'"evil"')
    refused(store, tar_bytes(files), "Config has digest")
    files = {"manifest.json": json.dumps([{"Config": "c.json", "Layers": [f"blobs/sha256/{'0' * 64}"]}]).encode(),
             "c.json": config_of([TOP]), f"blobs/sha256/{'0' * 64}": TOP}
    refused(store, tar_bytes(files), r"Layers\[0\]: the blob has digest")


def test_bad_tags_and_configs_cost_nothing(store: ImageStore) -> None:
    refused(store, tar_bytes(docker_files([([TOP], ["bad tag"])])), "invalid reference format")
    files = docker_files([([TOP], ["cfg:1"])])
    files["c.json"] = b'{"rootfs": {"diff_ids": ["md5:abc"]}}'
    files["manifest.json"] = json.dumps([{"Config": "c.json", "Layers": [n for n in files if "layer" in n]}]).encode()
    refused(store, tar_bytes(files), "not a sha256 digest")


def test_member_count_is_bounded(store: ImageStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imageload, "MAX_MEMBERS", 5)
    refused(store, tar_bytes({f"m{i}": b"" for i in range(6)}), "more than 5 members")


def test_garbage_is_refused(store: ImageStore) -> None:
    refused(store, b"\x1f\x8b" + os.urandom(4000), "not a tar archive|not a valid tar")


# the store ---------------------------------------------------------------------------------
def test_gc_keeps_what_a_load_under_way_has_staged(store: ImageStore) -> None:
    import io

    with store.staging() as staging:
        blob = store.put_stream(io.BytesIO(b"in flight"), staging=staging)
        store.gc(set())
        assert store.blob_path(blob.digest).exists()
    store.gc(set())
    assert not store.blob_path(blob.digest).exists()


def test_an_unpack_a_crash_cut_short_is_swept_at_start(store: ImageStore) -> None:
    (store.layers / ".tmp-deadbeef" / "etc").mkdir(parents=True)
    (store.tmp / "blob-deadbeef").write_bytes(b"half")
    ImageStore(store.dir.parent, Whiteouts())
    assert not (store.layers / ".tmp-deadbeef").exists() and not (store.tmp / "blob-deadbeef").exists()


def test_the_api_reports_the_refusal_and_keeps_no_upload(client: Any, engine: Any) -> None:
    engine.images.images()  # waits for the busybox image the engine builds at start
    before = state(engine.images.dir.parent)
    data = tar_bytes(docker_files([([tar_of(Entry(".wh...", "file"))], ["evil:1"])]))
    reply = client.request("POST", "/images/load", raw=data, length=len(data))  # in-band, as dockerd does
    assert reply.status == 200 and "whiteout of '..'" in json.loads(reply.read())["errorDetail"]["message"]
    assert list(engine.images.tmp.iterdir()) == []
    assert state(engine.images.dir.parent) == before
