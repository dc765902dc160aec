import gzip
import json

import pytest
from labagent.errors import BadParameter, Conflict, NotFound
from labagent.images import busybox, delete
from labagent.images.load import load_archive
from labagent.images.store import ImageStore, normalize

from .conftest import RecordingWhiteouts, docker_save, sha, tar_bytes

BASE = tar_bytes({"etc/": None, "etc/os": b"base\n"})
TOP = tar_bytes({"app/": None, "app/run": b"go\n"})


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "root", RecordingWhiteouts())


def archive(tmp_path, data, name="img.tar"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def oci_layout(layers, ref_name, gz=True):
    blobs = {}

    def put(data):
        blobs[f"blobs/sha256/{sha(data)[7:]}"] = data
        return {"digest": sha(data), "size": len(data)}

    layer_descs = []
    for layer in layers:
        blob = gzip.compress(layer, mtime=0) if gz else layer
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(blob)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(x) for x in layers]}}).encode()
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)}
    manifest = json.dumps({"schemaVersion": 2, "config": config_desc, "layers": layer_descs}).encode()
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(manifest),
             "annotations": {"org.opencontainers.image.ref.name": ref_name}}
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps({"schemaVersion": 2, "manifests": [mdesc]}).encode(), **blobs}
    return tar_bytes(files), sha(config)


def test_docker_save_loads_and_tags(tmp_path, store):
    lines = load_archive(store, archive(tmp_path, docker_save([BASE, TOP], ["app:1"])))
    assert lines == ["Loaded image: app:1"]
    image = store.resolve("app:1")
    dirs = store.layer_dirs(image)
    assert (dirs[0] / "etc/os").read_bytes() == b"base\n"
    assert (dirs[1] / "app/run").read_bytes() == b"go\n"
    assert not (dirs[1] / "etc").exists()  # each layer holds only its own files
    index = json.loads((tmp_path / "root/images/index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "app:1"
    manifest = json.loads(store.blob_path(image.manifest_digest).read_bytes())
    assert [layer["digest"] for layer in manifest["layers"]] == [sha(BASE), sha(TOP)]


def test_oci_layout_with_gzip_layers(tmp_path, store):
    data, config_digest = oci_layout([BASE], "docker.io/library/base:2")
    assert load_archive(store, archive(tmp_path, data)) == ["Loaded image: base:2"]
    image = store.resolve("base:2")
    assert image.id == config_digest
    assert (store.layer_dirs(image)[0] / "etc/os").exists()


def test_layers_are_unpacked_once_and_shared(tmp_path, store):
    load_archive(store, archive(tmp_path, docker_save([BASE], ["one:1"], ["a"]), "a.tar"))
    load_archive(store, archive(tmp_path, docker_save([BASE, TOP], ["two:1"], ["b"]), "b.tar"))
    one, two = store.resolve("one:1"), store.resolve("two:1")
    assert store.layer_dirs(one)[0] == store.layer_dirs(two)[0]
    assert len([p for p in store.layers.iterdir() if not p.name.startswith(".")]) == 2


def test_diff_id_mismatch_is_refused_and_leaves_no_layer(tmp_path, store):
    data, _ = oci_layout([BASE], "bad:1")
    bad = data.replace(sha(BASE)[7:].encode(), ("0" * 64).encode())
    with pytest.raises(BadParameter):
        load_archive(store, archive(tmp_path, bad))
    assert [p for p in store.layers.iterdir()] == []


def test_not_an_image_archive(tmp_path, store):
    with pytest.raises(BadParameter, match=r"neither manifest\.json"):
        load_archive(store, archive(tmp_path, tar_bytes({"hello": b"x"})))
    with pytest.raises(BadParameter, match="not a tar"):
        load_archive(store, archive(tmp_path, b"garbage" * 100))


def test_lookup_by_name_id_and_prefix(tmp_path, store):
    load_archive(store, archive(tmp_path, docker_save([BASE], ["docker.io/library/web:latest"])))
    image = store.resolve("web")
    assert store.resolve(image.id) is not None
    assert store.resolve(image.id[7:19]).id == image.id
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        store.resolve("nope")
    assert normalize("library/busybox") == "busybox:latest"
    assert normalize("reg:5000/a/b") == "reg:5000/a/b:latest"


def test_retag_moves_the_name_and_rmi_collects_layers(tmp_path, store):
    load_archive(store, archive(tmp_path, docker_save([BASE], ["app:1"], ["a"]), "a.tar"))
    first = store.resolve("app:1")
    load_archive(store, archive(tmp_path, docker_save([TOP], ["app:1"], ["b"]), "b.tar"))
    assert store.resolve("app:1").id != first.id
    assert {i.id: i.tags for i in store.images()}[first.id] == []
    with pytest.raises(Conflict):
        delete.remove(store, "app:1", {store.resolve("app:1").id: [delete.User("c" * 64, running=False)]})
    report = delete.remove(store, "app:1", {})
    assert {"Deleted": store.images()[0].id} not in report
    assert not store.layer_dir(sha(TOP)).exists()
    assert store.layer_dir(sha(BASE)).exists()  # the dangling first image still holds it


def test_busybox_image_from_the_static_binary(tmp_path, store, fake_busybox):
    image = busybox.ensure(store, fake_busybox)
    assert image is not None and image.tags == ["busybox:latest"]
    root = store.layer_dirs(image)[0]
    assert (root / "bin/busybox").read_bytes() == fake_busybox.read_bytes()
    assert (root / "bin/sh").is_symlink() and str((root / "bin/sh").readlink()) == "busybox"
    assert not (root / "bin/busybox").is_symlink()
    assert "root:x:0:0" in (root / "etc/passwd").read_text()
    assert (root / "tmp").stat().st_mode & 0o1777 == 0o1777
    assert image.config["config"]["Cmd"] == ["sh"]
    assert busybox.ensure(store, fake_busybox) is None  # only on first start
    again = busybox.build(store, fake_busybox)
    assert again.id == image.id  # deterministic layer and config
