"""Image operations (save, tag, history, prune, rmi, list filters, inspect) through docker-py and the
docker CLI, against the real server with fake seams."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import sha, tar_bytes
from .dockerhost import DOCKER, EngineProcess, start_engine

docker = pytest.importorskip("docker")
needs_cli = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


def archive(layers: list[bytes], tags: list[str], labels: dict[str, str] | None = None,
            created: str = "2024-01-01T00:00:00Z", history: list[dict[str, Any]] | None = None) -> bytes:
    """A docker-save tarball of one image, with labels and history as a build would write them."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": created,
                         "config": {"Cmd": ["sh"], "Labels": labels or None},
                         "history": history or [{"created": created, "created_by": f"layer {i}"}
                                                for i in range(len(layers))],
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]}}).encode()
    files: dict[str, bytes | None] = {f"{sha(config)[7:]}.json": config}
    names = []
    for layer in layers:
        names.append(f"{sha(layer)[7:]}/layer.tar")
        files[names[-1]] = layer
    files["manifest.json"] = json.dumps([{"Config": f"{sha(config)[7:]}.json", "RepoTags": tags,
                                          "Layers": names}]).encode()
    return tar_bytes(files)


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()}


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory):
    engine = start_engine(tmp_path_factory.mktemp("imageops"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    client = docker.DockerClient(base_url=eng.host, timeout=30)
    yield client
    for c in client.containers.list(all=True):
        c.remove(force=True)
    client.close()


def load(sdk: Any, data: bytes) -> Any:
    return sdk.images.load(data)[0]


# save and load --------------------------------------------------------------------------
def test_save_and_load_round_trip_with_tags(sdk) -> None:
    image = load(sdk, archive([tar_bytes({"a": b"1"}), tar_bytes({"b": b"2"})], ["round:1"]))
    image.tag("round", "2")
    data = b"".join(sdk.images.get("round:1").save(named=True))
    files = members(data)
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(files)
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] == ["round:1"] and manifest[0]["Config"] == f"blobs/sha256/{image.id[7:]}"
    assert all(layer in files for layer in manifest[0]["Layers"]) and len(manifest[0]["Layers"]) == 2
    index = json.loads(files["index.json"])
    names = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert names == ["docker.io/library/round:1"]
    assert f"blobs/sha256/{index['manifests'][0]['digest'][7:]}" in files
    assert json.loads(files["repositories"]) == {"round": {"1": sha(tar_bytes({"b": b"2"}))[7:]}}
    sdk.images.remove(image.id, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.images.get("round:1")
    result = sdk.images.load(data)
    assert [i.id for i in result] == [image.id] and sdk.images.get("round:1").id == image.id
    assert sdk.images.get(image.id).tags == ["round:1"]  # round:2 was not asked for


def test_save_of_a_repository_name_holds_all_its_tags_and_an_id_none(sdk, eng: EngineProcess) -> None:
    image = load(sdk, archive([tar_bytes({"r": b"1"})], ["repo:a"]))
    image.tag("repo", "b")
    whole = members(b"".join(sdk.api.get_image("repo")))
    assert sorted(json.loads(whole["manifest.json"])[0]["RepoTags"]) == ["repo:a", "repo:b"]
    by_id = members(b"".join(sdk.api.get_image(image.id[7:19])))
    assert json.loads(by_id["manifest.json"])[0]["RepoTags"] is None
    assert "repositories" not in by_id


def test_oci_layout_alone_loads(sdk) -> None:
    """What Docker 25+ and containerd read: index.json and the blobs, without manifest.json."""
    image = load(sdk, archive([tar_bytes({"o": b"ci"})], ["oci:1"]))
    files = members(b"".join(sdk.api.get_image("oci:1")))
    sdk.images.remove("oci:1")
    oci = tar_bytes({k: v for k, v in files.items() if k not in ("manifest.json", "repositories")
                     and k not in ("blobs", "blobs/sha256")})
    assert [i.id for i in sdk.images.load(oci)] == [image.id]
    assert sdk.images.get("oci:1").id == image.id


def test_save_many_names_and_unknown_names(sdk, eng: EngineProcess) -> None:
    a = load(sdk, archive([tar_bytes({"m": b"a"})], ["many:a"]))
    b = load(sdk, archive([tar_bytes({"m": b"b"})], ["many:b"]))
    data = _get(eng, "/images/get?names=many:a&names=many:b")
    manifest = json.loads(members(data)["manifest.json"])
    assert sorted(m["Config"] for m in manifest) == sorted(f"blobs/sha256/{i.id[7:]}" for i in (a, b))
    status, body = _request(eng, "GET", "/images/get?names=many:a&names=nosuch:1")
    assert status == 404 and json.loads(body)["message"] == "No such image: nosuch:1"
    status, body = _request(eng, "GET", "/images/get?" + "&".join(["names=many:a"] * 257))
    assert status == 400 and "at most 256" in json.loads(body)["message"]
    status, body = _request(eng, "GET", "/images/get")
    assert status == 400 and "names" in json.loads(body)["message"]
    with pytest.raises(docker.errors.NotFound):
        b"".join(sdk.api.get_image("nosuch"))
    for hostile in ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2Fetc"):
        status, _ = _request(eng, "GET", f"/images/{hostile}/get")
        assert status in (400, 404)
        status, _ = _request(eng, "GET", f"/images/get?names={hostile}")
        assert status in (400, 404)


def _request(eng: EngineProcess, method: str, path: str) -> tuple[int, bytes]:
    from labagent.client import UnixConnection

    conn = UnixConnection(str(eng.socket))
    conn.request(method, path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def _get(eng: EngineProcess, path: str) -> bytes:
    status, body = _request(eng, "GET", path)
    assert status == 200, body
    return body


def test_load_of_garbage_is_an_image_load_error(sdk) -> None:
    with pytest.raises(docker.errors.ImageLoadError, match="tar"):
        sdk.images.load(b"abc")


# tag ------------------------------------------------------------------------------------
def test_tag_and_remove_the_tag(sdk) -> None:
    image = sdk.images.get("busybox")
    assert image.tag("dockersdk.tests.images.test_tag", "some-tag") is True
    assert image.id in [i.id for i in sdk.images.list("dockersdk.tests.images.test_tag")]
    assert "dockersdk.tests.images.test_tag:some-tag" in sdk.images.get(image.id).tags
    assert sdk.api.inspect_image(image.id)["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    sdk.images.remove("dockersdk.tests.images.test_tag:some-tag")
    assert image.id not in [i.id for i in sdk.images.list("dockersdk.tests.images.test_tag")]
    assert image.id in [i.id for i in sdk.images.list("busybox:latest")]


@pytest.mark.parametrize(("repo", "tag", "message"), [
    ("../x", "", "invalid reference format"),
    ("x:", "", "invalid reference format"),
    ("/x", "", "invalid reference format"),
    ("a//b", "", "invalid reference format"),
    ("a:b:c", "", "invalid reference format"),
    ("a_b.c/x", "", "invalid reference format"),
    ("Upper", "", "must be lowercase"),
    ("a" * 256, "", "must not be more than 255 characters"),
    ("ok", "t" * 129, "invalid tag format"),
    ("ok", "bad/tag", "invalid tag format"),
    ("0" * 64, "", "cannot specify 64-byte hexadecimal strings"),
    ("sha256", "", "ambiguous"),
    ("x@sha256:" + "0" * 64, "", "digest"),
    ("", "", "repo"),
])
def test_tag_refuses_names_docker_refuses(sdk, repo: str, tag: str, message: str) -> None:
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.tag("busybox", repo, tag or None)
    assert err.value.status_code == 400 and message in str(err.value)


def test_tag_of_an_unknown_image_is_404_and_a_name_moves(sdk) -> None:
    with pytest.raises(docker.errors.ImageNotFound, match="No such image: nosuch"):
        sdk.api.tag("nosuch", "x", "1")
    first = load(sdk, archive([tar_bytes({"mv": b"1"})], ["moving:1"]))
    lines = [c.get("stream", "") for c in sdk.api.load_image(archive([tar_bytes({"mv": b"0"})], ["moving:0"]))]
    assert lines == ["Loaded image: moving:0\n"]
    taken = [c.get("stream", "") for c in sdk.api.load_image(archive([tar_bytes({"mv": b"1b"})], ["moving:1"]))]
    assert taken == [f"The image moving:1 already exists, renaming the old one with ID {first.id} to empty string\n",
                     "Loaded image: moving:1\n"]
    load(sdk, archive([tar_bytes({"mv": b"1"})], ["moving:1"]))  # back to the first
    second = load(sdk, archive([tar_bytes({"mv": b"2"})], ["other:1"]))
    assert sdk.api.tag(second.id, "docker.io/library/moving", "1") is True
    assert sdk.images.get("moving:1").id == second.id
    assert sdk.images.get(first.id).tags == []  # dangling now, not gone
    assert first.id in [i.id for i in sdk.images.list(filters={"dangling": True})]


# history --------------------------------------------------------------------------------
def test_history_newest_first_with_sizes_and_ids(sdk) -> None:
    layers = [tar_bytes({"one": b"1" * 700}), tar_bytes({"two": b"2" * 3000})]
    history = [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD one"},
               {"created": "2024-01-02T00:00:00Z", "created_by": "ENV A=1", "empty_layer": True},
               {"created": "2024-01-03T00:00:00Z", "created_by": "ADD two", "comment": "c"}]
    image = load(sdk, archive(layers, ["hist:1"], history=history))
    items = sdk.api.history("hist:1")
    assert [h["CreatedBy"] for h in items] == ["ADD two", "ENV A=1", "ADD one"]
    assert [h["Size"] for h in items] == [len(layers[1]), 0, len(layers[0])]
    assert items[0]["Id"] == image.id and items[0]["Tags"] == ["hist:1"] and items[0]["Comment"] == "c"
    assert [h["Id"] for h in items[1:]] == ["<missing>", "<missing>"]
    assert items[0]["Created"] == 1704240000 and set(items[0]) == {"Id", "Created", "CreatedBy", "Tags", "Size",
                                                                   "Comment"}
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.api.history("nosuch")


def build(sdk: Any, text: str, tag: str) -> Any:
    image, _ = sdk.images.build(fileobj=io.BytesIO(text.encode()), tag=tag, rm=True)
    return image


# rmi ------------------------------------------------------------------------------------
def test_a_parent_can_be_untagged_but_not_deleted_and_goes_with_its_last_child(sdk) -> None:
    base = load(sdk, archive([tar_bytes({"base": b"b"})], ["base:1"]))
    child = build(sdk, "FROM base:1\nRUN echo hi > made\nLABEL x=y\n", "child:1")
    assert sdk.api.inspect_image(child.id)["Parent"] == base.id
    history = sdk.api.history("child:1")
    assert history[0]["Id"] == child.id and history[-1]["Id"] == base.id and history[-1]["Tags"] == ["base:1"]
    with pytest.raises(docker.errors.APIError) as err:
        sdk.images.remove(base.id, force=True)
    assert err.value.status_code == 409
    assert f"unable to delete {base.id[7:19]} (cannot be forced) - image has dependent child images" in str(err.value)
    assert sdk.api.remove_image("base:1") == [{"Untagged": "base:1"}]
    assert base.id not in [i.id for i in sdk.images.list()]  # an intermediate image: shown with all only
    assert base.id in [i.id for i in sdk.images.list(all=True)]
    records = sdk.api.remove_image("child:1")
    deleted = [r["Deleted"] for r in records if "Deleted" in r]
    assert records[0] == {"Untagged": "child:1"} and child.id in deleted and base.id in deleted
    assert base.id not in [i.id for i in sdk.images.list(all=True)]


def test_noprune_keeps_the_untagged_parent(sdk) -> None:
    base = load(sdk, archive([tar_bytes({"np": b"b"})], ["npbase:1"]))
    build(sdk, "FROM npbase:1\nLABEL kept=1\n", "npchild:1")
    sdk.api.remove_image("npbase:1")
    records = sdk.api.remove_image("npchild:1", noprune=True)
    assert base.id not in [r.get("Deleted") for r in records]
    assert sdk.images.get(base.id).tags == []


def test_removing_one_of_several_tags_only_untags(sdk) -> None:
    image = load(sdk, archive([tar_bytes({"t": b"1"})], ["multi:1"]))
    image.tag("multi", "2")
    assert sdk.api.remove_image("multi:1") == [{"Untagged": "multi:1"}]
    assert sdk.images.get(image.id).tags == ["multi:2"]
    image.tag("multi", "3")
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.remove_image(image.id)
    assert err.value.status_code == 409 and "must be forced" in str(err.value)
    records = sdk.api.remove_image(image.id, force=True)
    assert {"Untagged": "multi:2"} in records and {"Untagged": "multi:3"} in records
    assert {"Deleted": image.id} in records


def test_an_image_a_running_container_uses_cannot_be_deleted_even_forced(sdk) -> None:
    busybox = sdk.images.get("busybox")
    ctr = sdk.containers.run("busybox", ["sleep", "30"], detach=True)
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.remove_image(busybox.id, force=True)
    assert err.value.status_code == 409
    assert f"(cannot be forced) - image is being used by running container {ctr.id[:12]}" in str(err.value)
    assert sdk.images.get("busybox:latest").id == busybox.id


def test_an_image_in_use_needs_force_and_keeps_its_layers(sdk) -> None:
    image = load(sdk, archive([tar_bytes({"u": b"1"})], ["used:1"]))
    ctr = sdk.containers.create("used:1", ["true"])
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.remove_image("used:1")
    assert err.value.status_code == 409 and f"container {ctr.id[:12]} is using its referenced image" in str(err.value)
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.remove_image(image.id)
    assert err.value.status_code == 409 and f"stopped container {ctr.id[:12]}" in str(err.value)
    assert sdk.api.remove_image("used:1", force=True) == [{"Untagged": "used:1"}]
    assert sdk.images.get(image.id).tags == []
    ctr.remove()
    assert {"Deleted": image.id} in sdk.api.remove_image(image.id)


# list and inspect -----------------------------------------------------------------------
def test_list_filters(sdk) -> None:
    old = load(sdk, archive([tar_bytes({"f": b"old"})], ["filt/old:1"], {"tier": "a"}, "2020-01-01T00:00:00Z"))
    new = load(sdk, archive([tar_bytes({"f": b"new"})], ["filt/new:1"], {"tier": "b"}, "2025-01-01T00:00:00Z"))
    new.tag("filt/new", "2")

    def ids(**kw: Any) -> set[str]:
        return {i["Id"] for i in sdk.api.images(**kw)}

    assert ids(filters={"label": "tier"}) >= {old.id, new.id}
    assert ids(filters={"label": "tier=a"}) == {old.id}
    assert ids(filters={"reference": "filt/*"}) == {old.id, new.id}
    only = sdk.api.images(filters={"reference": "filt/new:2"})
    assert [i["RepoTags"] for i in only] == [["filt/new:2"]]
    assert old.id in ids(filters={"before": "filt/new:1"}) and new.id not in ids(filters={"before": "filt/new:1"})
    assert ids(filters={"since": "filt/old:1", "reference": "filt/*"}) == {new.id}
    assert not {old.id, new.id} & ids(filters={"dangling": True})
    assert sdk.api.images(name="filt/old", quiet=True) == [old.id]
    for bad in ({"nosuch": "x"}, {"dangling": "maybe"}):
        with pytest.raises(docker.errors.APIError) as err:
            sdk.api.images(filters=bad)
        assert err.value.status_code == 400


def test_inspect_has_the_fields_docker_py_and_compose_read(sdk) -> None:
    data = sdk.api.inspect_image("busybox")
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container", "ContainerConfig",
                "DockerVersion", "Author", "Config", "Architecture", "Os", "Size", "VirtualSize", "GraphDriver",
                "RootFS", "Metadata"):
        assert key in data, key
    assert data["RootFS"]["Type"] == "layers" and data["RootFS"]["Layers"]
    assert data["Config"]["Cmd"] == ["sh"] and "Volumes" in data["Config"] and "Labels" in data["Config"]
    assert data["GraphDriver"]["Name"] == "overlay2" and data["GraphDriver"]["Data"]["UpperDir"]
    summary = next(i for i in sdk.api.images() if i["Id"] == data["Id"])
    assert {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize", "Labels",
            "Containers"} <= set(summary)


# prune (an engine of its own: prune -a takes every unused image) --------------------------
def test_prune_dangling_then_all_unused(tmp_path: Path) -> None:
    eng = start_engine(tmp_path / "prune")
    client = docker.DockerClient(base_url=eng.host, timeout=30)
    try:
        keep = client.images.get("busybox")
        client.containers.create("busybox", ["true"])  # busybox is in use: never pruned
        dangling = load(client, archive([tar_bytes({"d": b"1"})], ["dang:1"]))
        load(client, archive([tar_bytes({"d": b"2"})], ["dang:1"]))  # takes the name: the first dangles
        labelled = load(client, archive([tar_bytes({"l": b"1"})], ["lab:1"], {"keep": "no"}))
        tagged = load(client, archive([tar_bytes({"h": b"1" * 5000})], ["hello:1"]))
        result = client.api.prune_images()
        assert result["ImagesDeleted"] == [{"Deleted": dangling.id}, {"Deleted": sha(tar_bytes({"d": b"1"}))}]
        assert result["SpaceReclaimed"] > 0
        assert client.api.prune_images()["ImagesDeleted"] is None
        result = client.api.prune_images({"dangling": False, "label": "keep=no"})
        assert [r for r in result["ImagesDeleted"] if "Untagged" in r] == [{"Untagged": "lab:1"}]
        assert {"Deleted": labelled.id} in result["ImagesDeleted"]
        result = client.api.prune_images({"dangling": False, "until": "2000-01-01T00:00:00Z"})
        assert result["ImagesDeleted"] is None
        result = client.api.prune_images({"dangling": False})
        assert {"Untagged": "hello:1"} in result["ImagesDeleted"] and {"Deleted": tagged.id} in result["ImagesDeleted"]
        assert result["SpaceReclaimed"] >= 5000
        assert client.images.get("busybox").id == keep.id
        with pytest.raises(docker.errors.APIError) as err:
            client.api.prune_images({"reference": "x"})
        assert err.value.status_code == 400
    finally:
        client.close()
        eng.stop()


# the docker CLI -------------------------------------------------------------------------
@needs_cli
def test_cli_save_load_tag_history_rmi(eng: EngineProcess, tmp_path: Path) -> None:
    loaded = eng.docker("load", "-i", "/dev/stdin", stdin=archive([tar_bytes({"c": b"1"})], ["cli:1"]))
    assert loaded.returncode == 0 and "Loaded image: cli:1" in loaded.stdout, loaded.stderr
    assert eng.docker("tag", "cli:1", "cli:2").returncode == 0
    bad = eng.docker("tag", "cli:1", "Bad")
    assert bad.returncode != 0 and "lowercase" in bad.stderr
    saved = tmp_path / "cli.tar"
    out = eng.docker("save", "-o", str(saved), "cli:1", "cli:2")
    assert out.returncode == 0, out.stderr
    assert sorted(json.loads(members(saved.read_bytes())["manifest.json"])[0]["RepoTags"]) == ["cli:1", "cli:2"]
    history = eng.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "cli:1")
    assert history.returncode == 0 and history.stdout.startswith("layer 0|"), history.stderr
    rmi = eng.docker("rmi", "cli:1")
    assert rmi.stdout.strip() == "Untagged: cli:1"
    rmi = eng.docker("rmi", "cli:2")
    assert "Untagged: cli:2" in rmi.stdout and "Deleted: sha256:" in rmi.stdout
    assert eng.docker("image", "inspect", "cli:2").returncode != 0
    reload = eng.docker("load", "-i", str(saved))
    assert "Loaded image: cli:1" in reload.stdout and "Loaded image: cli:2" in reload.stdout, reload.stderr
    assert DOCKER is not None
    piped = subprocess.run([DOCKER, "save", "cli:1"], env=eng.env(), capture_output=True, timeout=20, check=False)
    assert piped.returncode == 0 and json.loads(members(piped.stdout)["manifest.json"])[0]["RepoTags"] == ["cli:1"]
    eng.docker("rmi", "cli:1")
    again = eng.docker("load", stdin=piped.stdout)  # docker save | docker load
    assert again.returncode == 0 and "Loaded image: cli:1" in again.stdout, again.stderr
    missing = eng.docker("save", "-o", str(tmp_path / "x.tar"), "nosuch:9")
    assert missing.returncode != 0 and "No such image: nosuch:9" in missing.stderr
    garbage = eng.docker("load", "-i", "/dev/stdin", stdin=b"garbage")
    assert garbage.returncode != 0 and "tar" in garbage.stderr


@needs_cli
def test_cli_image_prune(eng: EngineProcess) -> None:
    eng.docker("load", "-i", "/dev/stdin", stdin=archive([tar_bytes({"p": b"1"})], ["cliprune:1"]))
    eng.docker("load", "-i", "/dev/stdin", stdin=archive([tar_bytes({"p": b"2"})], ["cliprune:1"]))
    pruned = eng.docker("image", "prune", "-f")
    assert pruned.returncode == 0 and "deleted: sha256:" in pruned.stdout and "Total reclaimed space" in pruned.stdout
    assert "cliprune" in eng.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout


def test_events_of_image_operations(client, engine) -> None:
    """tag, untag, delete, load and save, with dockerd's actor ids and name attribute."""
    engine.images.images()
    data = archive([tar_bytes({"ev": b"1"})], ["ev:1"], {"team": "lab"})
    client.request("POST", "/images/load", raw=data, length=len(data)).read()
    image = engine.images.resolve("ev:1")
    client.request("POST", "/images/ev:1/tag", {"repo": "ev", "tag": "2"}).read()
    client.request("GET", "/images/ev:2/get").read()
    client.request("DELETE", "/images/ev:2").read()
    client.request("DELETE", "/images/ev:1").read()
    seen = [(e.action, e.actor_id, e.attributes.get("name"), e.attributes.get("team"))
            for e in engine.events.past(0) if e.type == "image" and e.actor_id == image.id]
    client.request("POST", "/images/prune").read()
    rootfs = tar_bytes({"imp": b"1"})
    reply = client.request("POST", "/images/create", {"fromSrc": "-", "repo": "imp", "tag": "1"}, raw=rootfs,
                           length=len(rootfs))
    imported = json.loads(reply.read())["status"]
    assert [(e.actor_id, e.attributes["name"]) for e in engine.events.past(0) if e.action == "import"] == [
        (imported, imported)]
    assert [e.attributes for e in engine.events.past(0) if e.action == "prune"] == [{"reclaimed": "0"}]
    assert seen == [("load", image.id, image.id, "lab"), ("tag", image.id, "ev:2", "lab"),
                    ("save", image.id, image.id, "lab"), ("untag", image.id, image.id, "lab"),
                    ("untag", image.id, image.id, "lab"), ("delete", image.id, image.id, "lab")]


# import ---------------------------------------------------------------------------------
def test_import_from_data_with_changes(sdk) -> None:
    rootfs = tar_bytes({"testdata": b"A" * 500})
    statuses = sdk.api.import_image_from_data(rootfs, repository="test/import-from-bytes",
                                              changes=["USER foobar", 'CMD ["echo"]', "ENV A=1 B=2", "EXPOSE 80"])
    result = json.loads(statuses.splitlines()[-1])
    assert "error" not in result
    data = sdk.api.inspect_image(result["status"])
    assert data["Config"]["Cmd"] == ["echo"] and data["Config"]["User"] == "foobar"
    assert data["Config"]["Env"] == ["A=1", "B=2"] and "80/tcp" in data["Config"]["ExposedPorts"]
    assert data["RepoTags"] == ["test/import-from-bytes:latest"] and data["RootFS"]["Layers"] == [sha(rootfs)]
    assert sdk.api.history(result["status"])[0]["Comment"] == "Imported from -"
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb") as handle:
        handle.write(rootfs)
    again = json.loads(sdk.api.import_image_from_data(gz.getvalue(), repository="gz", tag="1").splitlines()[-1])
    assert sdk.api.inspect_image("gz:1")["RootFS"]["Layers"] == [sha(rootfs)] and again["status"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"changes": ["RUN rm -rf /"]}, "run is not a valid change command"),
    ({"repository": "Bad"}, "must be lowercase"),
])
def test_import_refusals(sdk, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.import_image_from_data(tar_bytes({"x": b"1"}), **kwargs)
    assert err.value.status_code == 400 and message in str(err.value)
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.import_image_from_url("http://example.invalid/x.tar")
    assert err.value.status_code == 400 and "fromSrc" in str(err.value)


def test_save_streams_in_bounded_pieces(client, engine) -> None:
    """A layer of several MiB leaves in chunks of at most a MiB each: the save is never held whole."""
    import socket

    engine.images.images()
    big = tar_bytes({"big": bytes(range(256)) * (12 << 10)})  # 3 MiB
    data = archive([big], ["big:1"])
    client.request("POST", "/images/load", raw=data, length=len(data)).read()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(client.path)
    sock.sendall(b"GET /images/big:1/get HTTP/1.1\r\nHost: x\r\n\r\n")
    reader = sock.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += reader.readline()
    assert b"Transfer-Encoding: chunked" in head and b"application/x-tar" in head
    sizes, body = [], b""
    while (size := int(reader.readline().strip(), 16)) > 0:
        sizes.append(size)
        body += reader.read(size)
        reader.readline()
    sock.close()
    assert len(sizes) >= 3 and max(sizes) <= 1 << 20
    files = members(body)
    assert files[f"blobs/sha256/{sha(big)[7:]}"] == big


def test_a_loaded_parent_link_is_kept_only_when_the_layers_agree(tmp_path) -> None:
    from labagent.images.layers import Whiteouts
    from labagent.images.load import load_archive
    from labagent.images.store import ImageStore

    store = ImageStore(tmp_path / "root", Whiteouts())
    base_layer, top_layer = tar_bytes({"b": b"1"}), tar_bytes({"t": b"2"})
    (tmp_path / "base.tar").write_bytes(archive([base_layer], ["base:1"]))
    load_archive(store, tmp_path / "base.tar")
    base = store.resolve("base:1")
    other = archive([tar_bytes({"o": b"3"})], ["other:1"])
    (tmp_path / "other.tar").write_bytes(other)
    load_archive(store, tmp_path / "other.tar")

    def child(layers: list[bytes], tag: str, parent: str) -> bytes:
        files = members(archive(layers, [tag]))
        manifest = json.loads(files["manifest.json"])
        manifest[0]["Parent"] = parent
        files["manifest.json"] = json.dumps(manifest).encode()
        return tar_bytes({k: v for k, v in files.items() if k != "" and not k.endswith("/")})

    (tmp_path / "good.tar").write_bytes(child([base_layer, top_layer], "good:1", base.id))
    (tmp_path / "liar.tar").write_bytes(child([top_layer], "liar:1", base.id))
    (tmp_path / "junk.tar").write_bytes(child([tar_bytes({"j": b"4"})], "junk:1", "../../etc"))
    for name in ("good", "liar", "junk"):
        load_archive(store, tmp_path / f"{name}.tar")
    assert store.resolve("good:1").parent == base.id
    assert store.resolve("liar:1").parent == "" and store.resolve("junk:1").parent == ""
    assert [i.id for i in store.children(base.id)] == [store.resolve("good:1").id]


# commit ---------------------------------------------------------------------------------
def test_commit_makes_a_child_of_the_containers_image(sdk) -> None:
    busybox = sdk.images.get("busybox")
    # relative: the fake runtime runs it on the host, in the upper dir
    ctr = sdk.containers.run("busybox", ["sh", "-c", "echo made > test"], detach=True, environment={"E": "1"})
    ctr.wait(timeout=10)
    image = ctr.commit("committed", "1", changes=["EXPOSE 8000", 'CMD ["bash"]'], message="msg", author="me")
    data = sdk.api.inspect_image(image.id)
    assert data["Parent"] == busybox.id and data["RepoTags"] == ["committed:1"]
    assert "8000/tcp" in data["Config"]["ExposedPorts"] and data["Config"]["Cmd"] == ["bash"]
    assert "E=1" in data["Config"]["Env"] and data["Comment"] == "msg" and data["Author"] == "me"
    assert data["RootFS"]["Layers"][:-1] == sdk.api.inspect_image(busybox.id)["RootFS"]["Layers"]
    assert sdk.api.history(image.id)[0]["Comment"] == "msg"
    files = members(b"".join(sdk.api.get_image("committed:1")))
    top = json.loads(files["manifest.json"])[0]["Layers"][-1]
    assert members(files[top])["test"] == b"made\n"
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.remove_image(busybox.id)
    assert err.value.status_code == 409 and "dependent child images" in str(err.value)
    ctr.remove()
    records = sdk.api.remove_image(image.id, force=True)
    assert {"Deleted": image.id} in records and sdk.images.get("busybox").id == busybox.id
    live = sdk.containers.run("busybox", ["sleep", "30"], detach=True)
    paused = live.commit("live", "1")  # paused while its upper dir is read, then running again
    live.reload()
    assert live.status == "running" and not live.attrs["State"]["Paused"]
    assert sdk.api.inspect_image(paused.id)["Parent"] == busybox.id
    live.remove(force=True)
    sdk.api.remove_image(paused.id)
    with pytest.raises(docker.errors.NotFound):
        sdk.api.commit("nosuch")
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.commit("nosuch", repository="Bad")
    assert err.value.status_code == 400


@pytest.mark.parametrize(("text", "familiar", "full"), [
    ("busybox", "busybox:latest", "docker.io/library/busybox"),
    ("docker.io/library/busybox:1.36", "busybox:1.36", "docker.io/library/busybox"),
    ("index.docker.io/me/app", "me/app:latest", "docker.io/me/app"),
    ("localhost:5000/a:b", "localhost:5000/a:b", "localhost:5000/a"),
    ("Reg.Example/app", "Reg.Example/app:latest", "Reg.Example/app"),
    ("library/x/y", "library/x/y:latest", "docker.io/library/x/y"),
    ("a__b/c.d-e---f:V1.x_y", "a__b/c.d-e---f:V1.x_y", "docker.io/a__b/c.d-e---f"),
])
def test_references_in_their_familiar_form(text: str, familiar: str, full: str) -> None:
    from labagent.images import reference

    ref = reference.parse(text)
    assert (str(ref), ref.full_name) == (familiar, full)


def test_registry_operations_say_why_not(sdk) -> None:
    for call in (lambda: sdk.api.push("busybox"), lambda: sdk.api.search("alpine"),
                 lambda: sdk.api.inspect_distribution("busybox")):
        with pytest.raises(docker.errors.APIError) as err:
            call()
        assert err.value.status_code == 404 and "reaches no registry" in str(err.value)
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.api.push("nosuch")


def test_until_and_reference_patterns() -> None:
    from labagent.api.imagefilters import reference_match
    from labagent.api.timestamps import parse_time
    from labagent.errors import BadParameter

    def until_time(value: str, now: float | None = None) -> float:
        return parse_time(value, "until", now)

    assert until_time("1h30m", now=10_000) == 4600 and until_time("90s", now=100) == 10
    assert until_time("-1h", now=100) == 3700 and until_time(".5h", now=10_000) == 8200
    assert until_time("1700000000") == 1_700_000_000 and until_time("2024-01-01") == 1_704_067_200
    assert until_time("2024-01-01T01:00:00+01:00") == 1_704_067_200
    assert until_time("2024-01-01T00:00:00.123456789Z") == pytest.approx(1_704_067_200.123456)
    with pytest.raises(BadParameter, match="until"):
        until_time("yesterday")
    assert reference_match("busybox", "busybox:latest") and reference_match("me/*", "me/app:1")
    assert not reference_match("me/*", "me/a/b:1") and reference_match("*:1", "x:1")
    assert reference_match("b[a-z]sybox:?atest", "busybox:latest") and not reference_match("b[^u]sybox", "busybox:1")
    with pytest.raises(BadParameter, match="syntax error"):
        reference_match("[oops", "x:1")


def test_commit_pauses_a_running_container_unless_told_not_to(client, engine) -> None:
    engine.images.images()
    cid = client.json("POST", "/containers/create", body={"Image": "busybox", "Cmd": ["sleep", "30"]})["Id"]
    client.request("POST", f"/containers/{cid}/start").read()
    reply = client.request("POST", "/commit", {"container": cid, "repo": "frozen"})
    assert reply.status == 201 and json.loads(reply.read())["Id"].startswith("sha256:")
    client.request("POST", "/commit", {"container": cid, "pause": "0"}).read()
    actions = [e.action for e in engine.events.past(0)
               if e.actor_id == cid and e.action in ("pause", "unpause", "commit")]
    assert actions == ["pause", "unpause", "commit", "commit"]
    assert engine.containers.get(cid).running and not engine.containers.get(cid).state.paused
