"""Volumes, binds and tmpfs through docker-py and the docker CLI, against the real server.

fakecrun does not mount anything, so these tests read what the engine wrote for crun (the
bundle's config.json) and the volume store on disk; a real mount is the VM e2e's job.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labagent.containers import mountplan
from labagent.containers.model import CreateSpec, MountSpec
from labagent.containers.volumes import VolumeStore
from labagent.engine import Engine
from labagent.errors import EngineError

from .dockerhost import DOCKER, EngineProcess, start_engine

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory):
    engine = start_engine(tmp_path_factory.mktemp("volumes"))
    yield engine
    engine.stop()


@pytest.fixture
def api(eng: EngineProcess):
    client = docker.APIClient(base_url=eng.host, timeout=15)
    yield client
    for c in client.containers(all=True):
        client.remove_container(c["Id"], force=True, v=True)
    for v in client.volumes()["Volumes"] or []:
        client.remove_volume(v["Name"], force=True)
    client.close()


def volumes_root(eng: EngineProcess) -> Path:
    return eng.base / "root" / "volumes"


def oci_mounts(eng: EngineProcess, cid: str) -> dict[str, dict]:
    config = json.loads((eng.base / "root" / "containers" / cid / "config.json").read_text())
    return {m["destination"]: m for m in config["mounts"]}


# the volume API ------------------------------------------------------------------------
def test_create_inspect_list_remove(api, eng: EngineProcess) -> None:
    made = api.create_volume("perfectcherry", labels={"tier": "db"})
    assert made["Name"] == "perfectcherry" and made["Driver"] == "local" and made["Scope"] == "local"
    assert made["Labels"] == {"tier": "db"}
    assert made["Mountpoint"] == str(volumes_root(eng) / "perfectcherry" / "_data")
    assert Path(made["Mountpoint"]).is_dir()
    assert api.inspect_volume("perfectcherry") == made
    assert made in api.volumes()["Volumes"]
    assert api.create_volume("perfectcherry") == made  # an existing name is returned as it is
    assert [v["Name"] for v in api.volumes(filters={"label": "tier=db"})["Volumes"]] == ["perfectcherry"]
    assert api.volumes(filters={"label": "tier=web"})["Volumes"] == []
    assert [v["Name"] for v in api.volumes(filters={"name": "cherry"})["Volumes"]] == ["perfectcherry"]
    api.remove_volume("perfectcherry")
    assert not (volumes_root(eng) / "perfectcherry").exists()
    with pytest.raises(docker.errors.NotFound):
        api.inspect_volume("perfectcherry")
    with pytest.raises(docker.errors.NotFound):
        api.remove_volume("perfectcherry")


def test_unnamed_create_gets_a_random_name_and_prune_takes_only_anonymous_ones(api) -> None:
    anon = api.create_volume()
    assert len(anon["Name"]) == 64 and int(anon["Name"], 16) >= 0
    api.create_volume("keepme")
    result = api.prune_volumes()
    assert result["VolumesDeleted"] == [anon["Name"]]
    assert [v["Name"] for v in api.volumes()["Volumes"]] == ["keepme"]
    assert api.prune_volumes(filters={"all": "true"})["VolumesDeleted"] == ["keepme"]


def test_unsupported_driver_and_options_are_400(api) -> None:
    for kwargs in ({"driver": "this-plugin-does-not-exist"}, {"driver_opts": {"type": "nfs"}}):
        with pytest.raises(docker.errors.APIError) as err:
            api.create_volume("vol1", **kwargs)
        assert err.value.response.status_code == 400
    with pytest.raises(docker.errors.APIError) as err:
        api.volumes(filters={"colour": "red"})
    assert err.value.response.status_code == 400


def test_a_volume_in_use_cannot_be_removed_or_pruned(api) -> None:
    cid = api.create_container("busybox", "true", host_config=api.create_host_config(binds=["data:/data"]))["Id"]
    assert api.inspect_volume("data")["Name"] == "data"  # created on first use
    with pytest.raises(docker.errors.APIError) as err:
        api.remove_volume("data", force=True)
    assert err.value.response.status_code == 409
    assert "volume is in use" in err.value.explanation and cid in err.value.explanation
    assert api.prune_volumes(filters={"all": "1"})["VolumesDeleted"] is None
    assert api.volumes(filters={"dangling": "true"})["Volumes"] == []
    assert [v["Name"] for v in api.volumes(filters={"dangling": "false"})["Volumes"]] == ["data"]
    api.remove_container(cid, v=True)
    assert api.inspect_volume("data")  # a named volume outlives rm -v
    api.remove_volume("data")


# container mounts ----------------------------------------------------------------------
def test_binds_become_rbind_mounts_and_show_in_inspect(api, eng: EngineProcess, tmp_path: Path) -> None:
    src = tmp_path / "shared"
    src.mkdir()
    host = api.create_host_config(binds={str(src): {"bind": "/mnt", "ro": True}, "cache": {"bind": "/cache"}})
    cid = api.create_container("busybox", "true", volumes=["/mnt"], host_config=host)["Id"]
    mounts = oci_mounts(eng, cid)
    assert mounts["/mnt"] == {"destination": "/mnt", "type": "bind", "source": str(src),
                              "options": ["rbind", "rprivate", "ro"]}
    assert mounts["/cache"]["source"] == str(volumes_root(eng) / "cache" / "_data")
    assert mounts["/cache"]["options"] == ["rbind", "rprivate"]
    info = api.inspect_container(cid)
    by_dest = {m["Destination"]: m for m in info["Mounts"]}
    assert by_dest["/mnt"] == {"Type": "bind", "Source": str(src), "Destination": "/mnt", "Mode": "ro",
                               "RW": False, "Propagation": "rprivate"}
    assert by_dest["/cache"]["Name"] == "cache" and by_dest["/cache"]["RW"] is True
    assert by_dest["/cache"]["Source"] == str(volumes_root(eng) / "cache" / "_data")
    assert sorted(info["HostConfig"]["Binds"]) == sorted([f"{src}:/mnt:ro", "cache:/cache"])
    assert len(info["Mounts"]) == 2  # Config.Volumes' /mnt is the bind's, not an anonymous volume


def test_missing_bind_source_is_made_by_binds_and_refused_by_mounts(api, tmp_path: Path) -> None:
    missing = tmp_path / "not" / "yet"
    with pytest.raises(docker.errors.APIError) as err:
        api.create_container("busybox", "true", host_config=api.create_host_config(
            mounts=[docker.types.Mount("/data", str(missing), type="bind")]))
    assert err.value.response.status_code == 400 and "does not exist" in err.value.explanation
    cid = api.create_container("busybox", "true", host_config=api.create_host_config(
        binds=[f"{missing}:/data"]))["Id"]
    api.start(cid)
    assert api.wait(cid)["StatusCode"] == 0
    assert missing.is_dir()


def test_mounts_and_tmpfs(api, eng: EngineProcess, tmp_path: Path) -> None:
    mounts = [docker.types.Mount("/vol", "labelled", labels={"com.dockerpy.test": "true"}, no_copy=True),
              docker.types.Mount("/ro", str(tmp_path), type="bind", read_only=True),
              docker.types.Mount("/scratch", None, type="tmpfs", tmpfs_size=3 << 20, tmpfs_mode=0o1777)]
    host = api.create_host_config(mounts=mounts, tmpfs={"/run": "size=64m,mode=1777"})
    cid = api.create_container("busybox", "true", host_config=host)["Id"]
    assert api.inspect_volume("labelled")["Labels"] == {"com.dockerpy.test": "true"}
    oci = oci_mounts(eng, cid)
    assert oci["/run"] == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "noexec", "size=64m", "mode=1777"]}
    assert oci["/scratch"]["options"] == ["nosuid", "nodev", "noexec", f"size={3 << 20}", "mode=1777"]
    assert oci["/ro"]["options"] == ["rbind", "rprivate", "ro"]
    info = api.inspect_container(cid)
    assert info["HostConfig"]["Tmpfs"] == {"/run": "size=64m,mode=1777"}
    by_dest = {m["Destination"]: m for m in info["Mounts"]}
    assert by_dest["/vol"]["Name"] == "labelled" and by_dest["/vol"]["RW"] is True
    assert by_dest["/ro"]["RW"] is False and by_dest["/scratch"]["Type"] == "tmpfs"
    assert {m["Target"] for m in info["HostConfig"]["Mounts"]} == {"/vol", "/ro", "/scratch"}


def test_anonymous_volumes_go_with_rm_v_named_ones_stay(api, eng: EngineProcess) -> None:
    cid = api.create_container("busybox", "true", volumes=["/anon"],
                               host_config=api.create_host_config(binds=["named:/named"]))["Id"]
    info = api.inspect_container(cid)
    anon = next(m["Name"] for m in info["Mounts"] if m["Destination"] == "/anon")
    assert len(anon) == 64 and (volumes_root(eng) / anon / "_data").is_dir()
    assert info["Config"]["Volumes"] == {"/anon": {}}
    assert "com.docker.volume.anonymous" in api.inspect_volume(anon)["Labels"]
    api.remove_container(cid, v=True)
    assert not (volumes_root(eng) / anon).exists()
    assert api.inspect_volume("named")["Name"] == "named"


def test_rm_without_v_keeps_the_anonymous_volume_for_prune(api) -> None:
    cid = api.create_container("busybox", "true", volumes=["/anon"])["Id"]
    anon = api.inspect_container(cid)["Mounts"][0]["Name"]
    api.remove_container(cid)
    assert api.prune_volumes()["VolumesDeleted"] == [anon]


def test_volumes_from_copies_the_mounts_with_the_mode(api, eng: EngineProcess) -> None:
    api.create_container("busybox", "true", name="holder", volumes=["/anon"],
                         host_config=api.create_host_config(binds=["shared:/shared"]))
    cid = api.create_container("busybox", "true", host_config=api.create_host_config(
        volumes_from=["holder:ro"]))["Id"]
    info = api.inspect_container(cid)
    assert info["HostConfig"]["VolumesFrom"] == ["holder:ro"]
    by_dest = {m["Destination"]: m for m in info["Mounts"]}
    assert set(by_dest) == {"/anon", "/shared"} and not any(m["RW"] for m in by_dest.values())
    assert oci_mounts(eng, cid)["/shared"]["options"][-1] == "ro"
    api.remove_container(cid, v=True)  # the holder's anonymous volume is not this one's to remove
    assert api.inspect_volume(by_dest["/anon"]["Name"])
    with pytest.raises(docker.errors.NotFound):
        api.create_container("busybox", "true", host_config=api.create_host_config(volumes_from=["nobody"]))


def test_the_images_volumes_become_anonymous_volumes(tmp_path: Path, engine: Engine) -> None:
    image = engine.images.resolve("busybox")
    image.config.setdefault("config", {})["Volumes"] = {"/var/lib/data": {}, "/": {}}
    c = engine.lifecycle.create("imgvol", CreateSpec("busybox", "", cmd=["true"]))
    [mount] = c.spec.mounts
    assert (mount.type, mount.target, mount.anonymous, mount.origin) == ("volume", "/var/lib/data", True, "image")
    assert engine.volumes.exists(mount.source)


def test_volume_events(engine: Engine) -> None:
    body_spec = CreateSpec("busybox", "", cmd=["true"])
    body_spec.mounts = [MountSpec("volume", "/data", "evvol", origin="binds")]
    with engine.events.subscribe() as sub:
        c = engine.lifecycle.create("ev", body_spec)
        engine.lifecycle.start(c.id)
        engine.lifecycle.wait(c)
        engine.remove_container(c.id)
        engine.volumes.remove("evvol", [])
        seen = []
        while (event := sub.next(5)) is not None:
            if event.type == "volume":
                seen.append((event.action, event.attributes))
            if event.action == "destroy" and event.type == "volume":
                break
    actions = [a for a, _ in seen]
    assert actions[0] == "create" and "mount" in actions and actions[-1] == "destroy"
    mount = dict(seen)["mount"]
    assert mount["container"] == c.id and mount["destination"] == "/data" and mount["read/write"] == "true"
    assert mount["driver"] == "local"
    assert "unmount" in actions


# the docker CLI ------------------------------------------------------------------------
@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_volume_verbs_and_run_options(eng: EngineProcess, tmp_path: Path) -> None:
    assert eng.docker("volume", "create", "--label", "a=b", "clivol").stdout.strip() == "clivol"
    ls = eng.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}")
    assert ls.returncode == 0 and "local clivol" in ls.stdout.splitlines()
    assert eng.docker("volume", "inspect", "-f", "{{.Labels.a}}", "clivol").stdout.strip() == "b"
    run = eng.docker("run", "-d", "--name", "clirun", "-v", "clivol:/data:ro", "-v", "/anon",
                     "--mount", f"type=bind,src={tmp_path},dst=/host", "--tmpfs", "/run:size=8m",
                     "busybox", "true")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    fmt = '{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}} {{end}}'
    shown = set(eng.docker("inspect", "-f", fmt, cid).stdout.split())
    assert {"volume:/data:false", "volume:/anon:true", "bind:/host:true", "tmpfs:/run:true"} <= shown
    rm = eng.docker("volume", "rm", "clivol")
    assert rm.returncode != 0 and "volume is in use" in rm.stderr
    other = eng.docker("create", "--volumes-from", "clirun", "busybox", "true")
    assert other.returncode == 0, other.stderr
    assert "/anon" in eng.docker("inspect", "-f", fmt, other.stdout.strip()).stdout
    assert eng.docker("rm", "-v", other.stdout.strip()).returncode == 0
    eng.docker("wait", cid)
    anon = eng.docker("inspect", "-f", '{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}',
                      cid).stdout.strip()
    assert eng.docker("rm", "-v", cid).returncode == 0
    assert not (volumes_root(eng) / anon).exists()
    prune = eng.docker("volume", "prune", "-a", "-f")
    assert prune.returncode == 0 and "clivol" in prune.stdout
    assert eng.docker("volume", "ls", "-q").stdout.strip() == ""
    assert eng.docker("volume", "rm", "-f", "clivol").returncode == 0  # force: a missing one is no error
    assert eng.docker("volume", "rm", "clivol").returncode != 0


def test_volumes_survive_an_engine_restart(tmp_path: Path, engine: Engine) -> None:
    engine.volumes.create("kept", {"a": "b"})
    anon, _ = engine.volumes.create()
    again = VolumeStore(engine.volumes.dir)  # what the next engine start reads
    assert {v.name: v.labels for v in again.all()} == {
        "kept": {"a": "b"}, anon.name: {"com.docker.volume.anonymous": ""}}


def test_a_failed_create_leaves_no_volume_behind(engine: Engine) -> None:
    image = engine.images.resolve("busybox")
    cfg = image.config.setdefault("config", {})
    cfg["Cmd"], cfg["Entrypoint"] = None, None
    spec = CreateSpec("busybox", "", mounts=[MountSpec("volume", "/a", "", anonymous=True, origin="volumes"),
                                             MountSpec("volume", "/n", "fresh", origin="binds")])
    with pytest.raises(EngineError, match="No command"):
        engine.lifecycle.create("nocmd", spec)
    assert engine.volumes.all() == [] and engine.containers.all() == []


def test_source_for_maps_container_paths_to_the_innermost_mount(engine: Engine, tmp_path: Path) -> None:
    spec = CreateSpec("busybox", "", mounts=[MountSpec("volume", "/data", "dv", origin="binds"),
                                             MountSpec("bind", "/data/host", str(tmp_path), origin="binds"),
                                             MountSpec("tmpfs", "/run", origin="tmpfs")])
    assert mountplan.source_for(spec, "/data/x/y", engine.volumes) == (engine.volumes.data_dir("dv"), "x/y")
    assert mountplan.source_for(spec, "/data/host/../host/f", engine.volumes) == (tmp_path, "f")
    assert mountplan.source_for(spec, "/data", engine.volumes) == (engine.volumes.data_dir("dv"), "")
    assert mountplan.source_for(spec, "/database", engine.volumes) is None
    assert mountplan.source_for(spec, "/run/x", engine.volumes) is None


def test_docker_py_models_volumes_and_run(eng: EngineProcess, api, tmp_path: Path) -> None:
    sdk = docker.DockerClient(base_url=eng.host, timeout=15)
    try:
        volume = sdk.volumes.create("dockerpytest_1", driver="local", labels={"labelkey": "labelvalue"})
        assert volume.attrs["Labels"] == {"labelkey": "labelvalue"}
        assert sdk.volumes.get(volume.id).name == "dockerpytest_1"
        assert volume in sdk.volumes.list(filters={"name": "dockerpytest_"})
        assert volume not in sdk.volumes.list(filters={"name": "foobar"})
        ctr = sdk.containers.run("busybox", "true", detach=True, volumes={
            "dockerpytest_1": {"bind": "/named", "mode": "rw"}, str(tmp_path): {"bind": "/lone", "mode": "ro"}})
        ctr.wait()
        ctr.reload()
        shown = {m["Destination"]: (m["Type"], m.get("Name"), m["RW"]) for m in ctr.attrs["Mounts"]}
        assert shown["/named"] == ("volume", "dockerpytest_1", True)
        assert shown["/lone"] == ("bind", None, False)
        ctr.remove(v=True)
        volume.remove()
        assert volume not in sdk.volumes.list()
    finally:
        sdk.close()


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_run_rm_removes_the_anonymous_volumes_and_keeps_named_ones(eng: EngineProcess) -> None:
    before = set(eng.docker("volume", "ls", "-q").stdout.split())
    out = eng.docker("run", "--rm", "-v", "/anon", "-v", "rmkeep:/keep", "busybox", "true")
    assert out.returncode == 0, out.stderr
    assert set(eng.docker("volume", "ls", "-q").stdout.split()) - before == {"rmkeep"}
    assert eng.docker("volume", "rm", "rmkeep").returncode == 0
