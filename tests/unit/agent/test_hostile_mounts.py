"""Volumes and mounts as hostile input: names, targets, sources, tmpfs options, and image trees.

A volume's data dir is always a child of the volumes root; a mount target is always inside the
container's rootfs, however the image's symlinks point; tmpfs options come from a whitelist
with bounded values; and copy-up never follows an image's symlink out of either tree.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from labagent import beneath
from labagent.api.createbody import spec_from_body
from labagent.client import ApiError, Client
from labagent.containers import mountplan
from labagent.containers.model import Container, CreateSpec, MountSpec
from labagent.containers.volumes import VolumeStore
from labagent.engine import Engine
from labagent.errors import BadParameter

BODIES = json.loads((Path(__file__).with_name("create_bodies.json")).read_text())["bodies"]
DOCKER_RUN = BODIES["docker run -d --name x -p 8080:80 --memory 64m busybox"]

BAD_NAMES = ["../etc", "..", ".", "a/b", "/abs", "a", ".hidden", "-dash", "x" * 256, "na\x00me", "évol",
             "a b", "a:b", "a\\b", "_under"]


def with_host(body_extra: dict[str, Any] | None = None, **host: Any) -> dict[str, Any]:
    body = copy.deepcopy(DOCKER_RUN)
    body["HostConfig"].update(host)
    body.update(body_extra or {})
    return body


def mounts_of(**host: Any) -> list[MountSpec]:
    return spec_from_body(with_host(**host)).mounts


# names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BAD_NAMES)
def test_hostile_volume_names_are_refused_by_the_api_and_nothing_is_made(client: Client, engine: Engine,
                                                                         tmp_path: Path, name: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ApiError) as err:
        client.json("POST", "/volumes/create", body={"Name": name})
    assert err.value.status == 400
    assert engine.volumes.all() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if "\x00" not in name and "/" not in name:
        with pytest.raises(ApiError) as err:
            client.json("DELETE", f"/volumes/{client.ref(name)}")
        assert err.value.status in (400, 404)


@pytest.mark.parametrize("name", ["../etc", "a/b", "/abs"[1:] + "/..", "x" * 256])
def test_hostile_names_in_binds_and_mounts_are_refused(name: str) -> None:
    with pytest.raises(BadParameter):
        mounts_of(Binds=[f"{name}:/data"])
    with pytest.raises(BadParameter):
        mounts_of(Mounts=[{"Type": "volume", "Source": name, "Target": "/data"}])


def test_a_volume_data_dir_is_always_a_child_of_the_volumes_root(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "volumes")
    for name in ("..", "../x", "a/../../b", "/etc"):
        with pytest.raises(BadParameter):
            store.data_dir(name)
    volume, made = store.create("ok-1")
    assert made and store.data_dir(volume.name).parent.parent == tmp_path / "volumes"


def test_a_deleted_volume_request_never_reaches_outside(client: Client, engine: Engine, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    for ref in ("..", "%2e%2e", "..%2F..%2Fprecious", "%2Fetc"):
        with pytest.raises(ApiError) as err:
            client.json("DELETE", f"/volumes/{ref}")
        assert err.value.status in (400, 404)
    assert outside.is_dir() and (tmp_path / "root").is_dir()


def test_labels_and_filters_are_bounded(client: Client) -> None:
    with pytest.raises(ApiError) as err:
        client.json("POST", "/volumes/create", body={"Name": "many", "Labels": {str(i): "" for i in range(300)}})
    assert err.value.status == 400
    with pytest.raises(ApiError) as err:
        client.json("POST", "/volumes/create", body={"Name": "v1", "Labels": {"a": 1}})
    assert err.value.status == 400
    with pytest.raises(ApiError) as err:
        client.json("POST", "/volumes/create", body={"Name": "v1", "ClusterVolumeSpec": {"Group": "x"}})
    assert err.value.status == 400
    for filters in ('{"dangling": ["maybe"]}', '{"until": ["1h"]}', "[]", "{"):
        with pytest.raises(ApiError) as err:
            client.json("GET", "/volumes", {"filters": filters})
        assert err.value.status == 400


# targets -------------------------------------------------------------------------------
@pytest.mark.parametrize("target, cleaned", [("/../../etc", "/etc"), ("/data/./x/../y", "/data/y"),
                                             ("//srv//www/", "/srv/www")])
def test_targets_are_cleaned(target: str, cleaned: str) -> None:
    [mount] = mounts_of(Binds=[f"vol1:{target}"])
    assert mount.target == cleaned


@pytest.mark.parametrize("target", ["/", "/..", "/../", "relative", "", "/proc", "/proc/sys/kernel",
                                    "/sys", "/sys/fs/cgroup", "/../proc", "/x\x00y", "/" + "a" * 5000])
def test_bad_targets_are_refused_in_every_field(target: str) -> None:
    for host in ({"Binds": [f"vol1:{target}"]}, {"Tmpfs": {target: ""}},
                 {"Mounts": [{"Type": "tmpfs", "Target": target}]}):
        with pytest.raises(BadParameter):
            mounts_of(**host)
    with pytest.raises(BadParameter):
        spec_from_body(with_host({"Volumes": {target: {}}}))


def test_duplicate_targets_and_too_many_mounts_are_refused() -> None:
    with pytest.raises(BadParameter, match="Duplicate mount point"):
        mounts_of(Binds=["a1:/data"], Tmpfs={"/data/": ""})
    with pytest.raises(BadParameter):
        mounts_of(Tmpfs={f"/t{i}": "" for i in range(300)})


def test_a_lone_bind_path_is_an_anonymous_volume() -> None:
    [mount] = mounts_of(Binds=["/data:ro"])
    assert (mount.type, mount.target, mount.source, mount.readonly, mount.anonymous) == ("volume", "/data", "",
                                                                                        True, True)


@pytest.mark.parametrize("bind", ["a:b:c:d", ":/x", "relative", "/", "/src:bogus", "c:\\x:/y",
                                  "/src:/dst:ro,z", "/src:/dst:shared,bogus",
                                  "vol1:/dst:rshared", "/src:/dst:nocopy", "./rel:/dst"])
def test_malformed_binds_are_refused(bind: str) -> None:
    with pytest.raises(BadParameter):
        mounts_of(Binds=[bind])


@pytest.mark.parametrize("mount", [
    {"Type": "npipe", "Source": "x", "Target": "/x"},
    {"Type": "bind", "Source": "relative", "Target": "/x"},
    {"Type": "bind", "Source": "/", "Target": "/x", "BindOptions": {"NonRecursive": True}},
    {"Type": "bind", "Source": "/", "Target": "/x", "BindOptions": {"Propagation": "everywhere"}},
    {"Type": "bind", "Source": "/", "Target": "/x", "VolumeOptions": {"NoCopy": True}},
    {"Type": "volume", "Source": "v1", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}},
    {"Type": "volume", "Source": "v1", "Target": "/x", "VolumeOptions": {"Subpath": "a/../.."}},
    {"Type": "tmpfs", "Source": "/etc", "Target": "/x"},
    {"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": 1 << 60}},
    {"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Mode": 0o17777}},
    {"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": -1}},
    {"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Options": [["exec"]]}},
    {"Type": "volume", "Target": "/x", "Labels": {"a": "b"}},
    "not an object",
])
def test_malformed_mounts_are_refused_by_name(mount: Any) -> None:
    with pytest.raises(BadParameter):
        mounts_of(Mounts=[mount])


def test_a_mounts_bind_source_must_exist(tmp_path: Path) -> None:
    with pytest.raises(BadParameter, match="does not exist"):
        mounts_of(Mounts=[{"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x"}])
    [mount] = mounts_of(Mounts=[{"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x",
                                 "BindOptions": {"CreateMountpoint": True}}])
    assert mount.source == str(tmp_path / "nope")


# tmpfs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("options", ["size=64m,mode=1777,noexec,nosuid,nodev", "size=50%", "exec,uid=1000,gid=1000",
                                     "nr_inodes=1k,ro", "rw", ""])
def test_whitelisted_tmpfs_options_are_accepted(options: str) -> None:
    [mount] = mounts_of(Tmpfs={"/run": options})
    assert mount.options == [o for o in options.split(",") if o]


@pytest.mark.parametrize("options", ["size=1000000g", "size=200%", "size=0%", "size=-1", "size=1e9", "mode=99999",
                                     "mode=8", "uid=-1", "uid=99999999999", "nr_inodes=99999999999g", "suid", "dev",
                                     "context=system_u:object_r:tmp_t", "size=1m,size=2m", "huge=always",
                                     "mpol=bind:0", "size", "x" * 2000])
def test_other_tmpfs_options_and_unbounded_values_are_refused(options: str) -> None:
    with pytest.raises(BadParameter):
        mounts_of(Tmpfs={"/run": options})


# trees on disk -------------------------------------------------------------------------
def hostile_rootfs(tmp_path: Path) -> tuple[Path, Path]:
    """A rootfs whose /data, /etc and /lnk lead out of it, and a directory they aim at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    rootfs = tmp_path / "rootfs"
    (rootfs / "app" / "sub").mkdir(parents=True)
    (rootfs / "app" / "config").write_text("from the image")
    (rootfs / "app" / "sub" / "deep").write_text("deep")
    os.chmod(rootfs / "app" / "config", 0o640)
    os.symlink(str(outside), rootfs / "app" / "escape")  # absolute, out of the tree
    os.symlink("../../../../outside/secret", rootfs / "app" / "relative-escape")
    (outside / "secret").write_text("the node's")
    os.symlink("../../outside", rootfs / "data")
    os.symlink(str(outside), rootfs / "etc")
    os.symlink("/app", rootfs / "lnk")
    return rootfs, outside


def test_mount_targets_are_made_inside_the_rootfs_whatever_its_symlinks(tmp_path: Path) -> None:
    rootfs, outside = hostile_rootfs(tmp_path)
    with beneath.open_tree(rootfs) as rootfd:
        mountplan.make_target(rootfd, "/data/made", False)
        mountplan.make_target(rootfd, "/etc/deep/er", False)
        mountplan.make_target(rootfd, "/etc/hosts.extra", True)
        mountplan.make_target(rootfd, "/../../../fresh", False)
    assert os.listdir(outside) == ["secret"]
    assert (rootfs / "outside" / "made").is_dir()  # ../../outside from /data is the rootfs's /outside
    inside = rootfs / str(outside).lstrip("/")  # /etc -> the node's path, read inside the rootfs
    assert (inside / "deep" / "er").is_dir() and (inside / "hosts.extra").is_file()
    assert (rootfs / "fresh").is_dir() and not (tmp_path / "fresh").exists()


def test_copy_up_copies_the_image_content_and_never_follows_its_symlinks(tmp_path: Path) -> None:
    rootfs, outside = hostile_rootfs(tmp_path)
    store = VolumeStore(tmp_path / "volumes")
    store.create("app")
    data = store.data_dir("app")
    with beneath.open_tree(rootfs) as rootfd:
        mountplan.copy_up(rootfd, "/lnk", data)  # /lnk -> /app, resolved in the rootfs
    assert (data / "config").read_text() == "from the image"
    assert oct((data / "config").stat().st_mode & 0o777) == oct(0o640)
    assert (data / "sub" / "deep").read_text() == "deep"
    assert os.readlink(data / "escape") == str(outside)  # copied as a link, not followed
    assert os.readlink(data / "relative-escape") == "../../../../outside/secret"
    assert os.listdir(outside) == ["secret"]
    (data / "config").write_text("changed by a container")
    with beneath.open_tree(rootfs) as rootfd:
        mountplan.copy_up(rootfd, "/app", data)  # a volume with content keeps it
    assert (data / "config").read_text() == "changed by a container"


def test_copy_up_of_a_target_that_leads_out_copies_from_inside_only(tmp_path: Path) -> None:
    rootfs, _ = hostile_rootfs(tmp_path)
    store = VolumeStore(tmp_path / "volumes")
    store.create("etc")
    with beneath.open_tree(rootfs) as rootfd:
        mountplan.copy_up(rootfd, "/etc", store.data_dir("etc"))  # /etc -> the node's outside dir
    assert os.listdir(store.data_dir("etc")) == []  # the rootfs has no /outside: nothing copied


def test_prepare_at_start_makes_targets_copies_once_and_honours_nocopy(tmp_path: Path) -> None:
    rootfs, outside = hostile_rootfs(tmp_path)
    store = VolumeStore(tmp_path / "volumes")
    for name in ("v-copy", "v-nocopy"):
        store.create(name)
    spec = CreateSpec("busybox", "", mounts=[
        MountSpec("volume", "/app", "v-copy", origin="binds"),
        MountSpec("volume", "/lnk/sub", "v-nocopy", options=["nocopy"], origin="binds"),
        MountSpec("tmpfs", "/data/tmp", origin="tmpfs"),
        MountSpec("bind", "/etc/bound", str(tmp_path / "node-dir"), origin="binds"),
    ])
    container = Container("c" * 64, "c", "now", spec)
    mountplan.prepare(container, rootfs, store)
    assert (store.data_dir("v-copy") / "config").is_file()
    assert os.listdir(store.data_dir("v-nocopy")) == []
    assert (rootfs / "outside" / "tmp").is_dir() and (rootfs / str(outside).lstrip("/") / "bound").is_dir()
    assert (tmp_path / "node-dir").is_dir()  # a missing Binds source is made on the node, as dockerd does
    assert os.listdir(outside) == ["secret"]
    missing = Container("d" * 64, "d", "now", CreateSpec("busybox", "", mounts=[
        MountSpec("bind", "/x", str(tmp_path / "gone"), origin="mounts")]))
    with pytest.raises(Exception, match="does not exist"):
        mountplan.prepare(missing, rootfs, store)


def test_a_hostile_image_volume_list_is_skipped_not_followed(engine: Engine) -> None:
    image = engine.images.resolve("busybox")
    image.config.setdefault("config", {})["Volumes"] = {"/": {}, "relative": {}, "/proc/x": {}, "/../srv": {}}
    c = engine.lifecycle.create("imgvols", CreateSpec("busybox", "", cmd=["true"]))
    assert [m.target for m in c.spec.mounts] == ["/srv"]
