"""docker-py's top, stats, pause/unpause, update, rename, kill, list filters and wait against the
real engine server with fake seams (dockerhost): what docker-py's integration tests read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from labagent.engine import Engine
from labagent.server import serve

from .conftest import docker_save, tar_bytes
from .dockerhost import DOCKER, EngineProcess, docker_client, start_engine, until

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def eng(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    engine = start_engine(tmp_path_factory.mktemp("ops"))
    yield engine
    engine.stop()


@pytest.fixture
def sdk(eng: EngineProcess):
    yield from docker_client(eng)


def cgroup_dir(eng: EngineProcess, cid: str) -> Path:
    return eng.base / "seams" / "cgroup" / "labagent" / cid / "ctr"


def proc_state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2]


def sleeper(sdk, name: str = "", **kwargs):
    return sdk.containers.run("busybox", ["sleep", "60"], detach=True, name=name or None, **kwargs)


# top -------------------------------------------------------------------------------------
def test_top_lists_the_cgroup_processes_in_ps_ef_and_aux_columns(sdk) -> None:
    ctr = sleeper(sdk)
    ctr.reload()
    res = sdk.api.top(ctr.id)
    assert res["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(res["Processes"]) == 1
    row = res["Processes"][0]
    assert row[-1] == "sleep 60" and row[1] == str(ctr.attrs["State"]["Pid"])
    aux = sdk.api.top(ctr.id, ps_args="waux")
    assert aux["Titles"] == ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START",
                             "TIME", "COMMAND"]
    assert len(aux["Processes"]) == 1 and aux["Processes"][0][10] == "sleep 60"


def test_top_refuses_unknown_ps_args_and_a_stopped_container(sdk) -> None:
    ctr = sleeper(sdk)
    with pytest.raises(docker.errors.APIError, match="ps_args") as err:
        sdk.api.top(ctr.id, ps_args="-o pid;rm -rf /")
    assert err.value.status_code == 400
    ctr.kill()
    ctr.wait(timeout=10)
    with pytest.raises(docker.errors.APIError, match="is not running") as err:
        sdk.api.top(ctr.id)
    assert err.value.status_code == 409


# stats -----------------------------------------------------------------------------------
def write_figures(group: Path) -> None:
    (group / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"
                                    "nr_periods 7\nnr_throttled 2\nthrottled_usec 30\n")
    (group / "memory.current").write_text("1048576\n")
    (group / "memory.max").write_text("67108864\n")
    (group / "memory.stat").write_text("anon 4096\nfile 8192\ninactive_file 1024\n")
    (group / "io.stat").write_text("254:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n")
    (group / "pids.current").write_text("3\n")
    (group / "pids.max").write_text("max\n")


def test_one_shot_stats_carry_the_cgroup_v2_figures(sdk, eng: EngineProcess) -> None:
    ctr = sleeper(sdk, name="st")
    write_figures(cgroup_dir(eng, ctr.id))
    s = sdk.api.stats(ctr.id, stream=False, one_shot=True)
    assert s["name"] == "/st" and s["id"] == ctr.id
    for key in ("read", "preread", "networks", "precpu_stats", "cpu_stats", "memory_stats", "blkio_stats",
                "pids_stats"):
        assert key in s
    assert s["cpu_stats"]["cpu_usage"] == {"total_usage": 2_500_000, "usage_in_kernelmode": 500_000,
                                           "usage_in_usermode": 2_000_000}
    assert s["cpu_stats"]["throttling_data"] == {"periods": 7, "throttled_periods": 2, "throttled_time": 30_000}
    assert s["cpu_stats"]["system_cpu_usage"] > 0 and s["cpu_stats"]["online_cpus"] >= 1
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] == 0  # one-shot: no previous sample
    assert s["memory_stats"] == {"usage": 1048576, "limit": 67108864,
                                 "stats": {"anon": 4096, "file": 8192, "inactive_file": 1024}}
    assert s["pids_stats"] == {"current": 3, "limit": 0}
    assert {"major": 254, "minor": 0, "op": "write", "value": 1024} in \
        s["blkio_stats"]["io_service_bytes_recursive"]
    assert s["blkio_stats"]["io_serviced_recursive"][0]["value"] == 1


def test_unlimited_memory_reports_the_node_memory(sdk, eng: EngineProcess) -> None:
    ctr = sleeper(sdk)
    write_figures(cgroup_dir(eng, ctr.id))
    (cgroup_dir(eng, ctr.id) / "memory.max").write_text("max\n")
    node = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    assert sdk.api.stats(ctr.id, stream=False, one_shot=True)["memory_stats"]["limit"] == node


def test_stats_without_one_shot_fill_precpu_from_a_previous_sample(sdk, eng: EngineProcess) -> None:
    ctr = sleeper(sdk)
    write_figures(cgroup_dir(eng, ctr.id))
    s = sdk.api.stats(ctr.id, stream=False)
    assert s["precpu_stats"]["cpu_usage"]["total_usage"] == 2_500_000
    assert s["preread"] != "0001-01-01T00:00:00Z" and s["preread"] < s["read"]


def test_streamed_stats_chain_samples_and_end_when_the_container_stops(sdk, eng: EngineProcess) -> None:
    ctr = sleeper(sdk)
    write_figures(cgroup_dir(eng, ctr.id))
    stream = sdk.api.stats(ctr.id, decode=True)
    first, second = next(stream), next(stream)
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]
    ctr.kill()
    rest = list(stream)  # ends once the container has stopped
    assert len(rest) <= 3


def test_stats_of_a_stopped_container_are_zeroed(sdk) -> None:
    ctr = sdk.containers.create("busybox", ["true"])
    s = sdk.api.stats(ctr.id, stream=False, one_shot=True)
    assert s["memory_stats"] == {} and s["cpu_stats"]["cpu_usage"]["total_usage"] == 0
    url = sdk.api._url("/containers/{0}/stats", ctr.id)
    assert sdk.api.get(url, params={"stream": "1", "one-shot": "1"}).status_code == 400


# pause / unpause ----------------------------------------------------------------------------
def test_pause_freezes_and_unpause_thaws(sdk, eng: EngineProcess) -> None:
    ctr = sleeper(sdk, name="pz")
    ctr.reload()
    pid = ctr.attrs["State"]["Pid"]
    ctr.pause()
    state = sdk.api.inspect_container(ctr.id)["State"]
    assert (state["Status"], state["Running"], state["Paused"], state["ExitCode"]) == ("paused", True, True, 0)
    assert (cgroup_dir(eng, ctr.id) / "cgroup.freeze").read_text() == "1"
    assert proc_state(pid) == "T"
    info = sdk.info()
    assert (info["ContainersPaused"], info["ContainersRunning"]) == (1, 0)
    [listed] = sdk.api.containers(filters={"name": "pz"})
    assert listed["State"] == "paused" and listed["Status"].endswith("(Paused)")
    assert [c["Id"] for c in sdk.api.containers(filters={"status": "paused"})] == [ctr.id]
    assert sdk.api.containers(filters={"status": "running"}) == []
    with pytest.raises(docker.errors.APIError, match="is already paused") as err:
        ctr.pause()
    assert err.value.status_code == 409
    with pytest.raises(docker.errors.APIError, match="is paused") as err:
        ctr.exec_run(["true"])
    assert err.value.status_code == 409
    with pytest.raises(docker.errors.APIError, match="paused container") as err:
        sdk.api.attach(ctr.id, stream=False, logs=True)
    assert err.value.status_code == 409
    ctr.unpause()
    state = sdk.api.inspect_container(ctr.id)["State"]
    assert (state["Status"], state["Running"], state["Paused"]) == ("running", True, False)
    assert (cgroup_dir(eng, ctr.id) / "cgroup.freeze").read_text() == "0"
    assert proc_state(pid) != "T"
    with pytest.raises(docker.errors.APIError, match="is not paused") as err:
        ctr.unpause()
    assert err.value.status_code == 409


def test_pause_of_a_stopped_container_is_a_conflict_and_a_paused_one_still_stops(sdk) -> None:
    created = sdk.containers.create("busybox", ["sleep", "60"])
    with pytest.raises(docker.errors.APIError, match="is not running") as err:
        created.pause()
    assert err.value.status_code == 409
    ctr = sleeper(sdk)
    ctr.pause()
    ctr.stop(timeout=5)  # thawed after SIGTERM, so it ends on that, not on the SIGKILL
    state = sdk.api.inspect_container(ctr.id)["State"]
    assert (state["Status"], state["Paused"], state["ExitCode"]) == ("exited", False, 143)


# update ----------------------------------------------------------------------------------
def test_update_applies_limits_live_and_records_them(sdk, eng: EngineProcess) -> None:
    ctr = sleeper(sdk, mem_limit=400 << 20)
    sdk.api.update_container(ctr.id, mem_limit=300 << 20)
    url = sdk.api._url("/containers/{0}/update", ctr.id)  # docker-py has no pids_limit here
    assert sdk.api._post_json(url, data={"PidsLimit": 50}).status_code == 200
    host = sdk.api.inspect_container(ctr.id)["HostConfig"]
    assert (host["Memory"], host["PidsLimit"]) == (300 << 20, 50)
    group = cgroup_dir(eng, ctr.id)
    assert (group / "memory.max").read_text() == str(300 << 20)
    assert (group / "memory.swap.max").read_text() == "0"
    assert (group / "pids.max").read_text() == "50"
    sdk.api.update_container(ctr.id, cpu_quota=50000, cpu_period=100000)
    assert (group / "cpu.max").read_text() == "50000 100000"
    host = sdk.api.inspect_container(ctr.id)["HostConfig"]
    assert (host["CpuQuota"], host["CpuPeriod"], host["Memory"]) == (50000, 100000, 300 << 20)
    config = (eng.base / "root" / "containers" / ctr.id / "config.json").read_text()
    assert f'"limit": {300 << 20}' in config  # the next start applies them too


def test_update_of_the_restart_policy_is_recorded(sdk) -> None:
    ctr = sleeper(sdk)
    sdk.api.update_container(ctr.id, restart_policy={"Name": "on-failure", "MaximumRetryCount": 42})
    policy = sdk.api.inspect_container(ctr.id)["HostConfig"]["RestartPolicy"]
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 42}
    with pytest.raises(docker.errors.APIError, match="retry count") as err:
        sdk.api.update_container(ctr.id, restart_policy={"Name": "always", "MaximumRetryCount": 3})
    assert err.value.status_code == 400


@pytest.mark.parametrize("kwargs, field", [({"cpuset_cpus": "0"}, "CpusetCpus"),
                                            ({"memswap_limit": 1 << 30, "mem_limit": 1 << 28}, "MemorySwap"),
                                            ({"kernel_memory": 1 << 20}, "KernelMemory")])
def test_update_refuses_what_it_cannot_apply_by_name(sdk, kwargs: dict[str, object], field: str) -> None:
    ctr = sleeper(sdk, mem_limit=64 << 20)
    with pytest.raises(docker.errors.APIError, match=field) as err:
        sdk.api.update_container(ctr.id, **kwargs)
    assert err.value.status_code == 400
    assert sdk.api.inspect_container(ctr.id)["HostConfig"]["Memory"] == 64 << 20


@pytest.mark.parametrize("body", [{"Memory": 1 << 70}, {"PidsLimit": 1 << 64}, {"Memory": "lots"},
                                  {"PidsLimit": "9"}, {"NanoCpus": -5}, {"CpuQuota": 10},
                                  {"RestartPolicy": {"Name": "sometimes"}},
                                  {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": "3"}},
                                  {"RestartPolicy": "always"}, {"Privileged": True}, {"Image": "x"}])
def test_update_refuses_hostile_bodies(sdk, eng: EngineProcess, body: dict[str, object]) -> None:
    ctr = sleeper(sdk, mem_limit=64 << 20)
    url = sdk.api._url("/containers/{0}/update", ctr.id)
    answer = sdk.api._post_json(url, data=body)
    assert answer.status_code == 400, answer.text
    assert sdk.api.inspect_container(ctr.id)["HostConfig"]["Memory"] == 64 << 20
    assert (cgroup_dir(eng, ctr.id) / "memory.max").exists() is False  # nothing half-applied


def test_update_of_a_stopped_container_is_recorded_for_its_next_start(sdk, eng: EngineProcess) -> None:
    ctr = sdk.containers.create("busybox", ["sleep", "60"])
    sdk.api.update_container(ctr.id, mem_limit=48 << 20)
    ctr.start()
    assert sdk.api.inspect_container(ctr.id)["HostConfig"]["Memory"] == 48 << 20
    config = (eng.base / "root" / "containers" / ctr.id / "config.json").read_text()
    assert f'"limit": {48 << 20}' in config


@pytest.mark.skipif(DOCKER is None, reason="docker CLI missing")
def test_docker_cli_update_with_its_zeroed_resources(eng: EngineProcess, sdk) -> None:
    ctr = sleeper(sdk, mem_limit=64 << 20)
    out = eng.docker("update", "--memory", "32m", "--memory-swap", "32m", ctr.id)
    assert out.returncode == 0, out.stderr
    assert sdk.api.inspect_container(ctr.id)["HostConfig"]["Memory"] == 32 << 20
    out = eng.docker("update", "--cpuset-cpus", "0", ctr.id)
    assert out.returncode != 0 and "CpusetCpus" in out.stderr


# rename ----------------------------------------------------------------------------------
def test_rename_updates_name_and_hosts_and_refuses_conflicts(sdk, eng: EngineProcess) -> None:
    ctr = sleeper(sdk, name="old")
    other = sdk.containers.create("busybox", ["true"], name="taken")
    ctr.rename("hong_meiling")
    assert sdk.api.inspect_container(ctr.id)["Name"] == "/hong_meiling"
    hosts = (eng.base / "root" / "containers" / ctr.id / "hosts").read_text()
    assert "hong_meiling" in hosts and "old" not in hosts.split()
    with pytest.raises(docker.errors.APIError, match="already in use") as err:
        ctr.rename("taken")
    assert err.value.status_code == 409
    for bad in ("bad name", "../x", ""):
        with pytest.raises(docker.errors.APIError) as err:
            sdk.api.rename(ctr.id, bad)
        assert err.value.status_code == 400
    with pytest.raises(docker.errors.NotFound):
        sdk.api.rename("nosuch", "x")
    assert sdk.containers.get("taken").id == other.id


# kill ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig, code", [("SIGHUP", 129), ("HUP", 129), ("hup", 129), (15, 143), ("9", 137)])
def test_kill_by_name_and_number(sdk, sig: object, code: int) -> None:
    ctr = sleeper(sdk)
    ctr.kill(signal=sig)
    assert ctr.wait(timeout=10)["StatusCode"] == code


def test_kill_refuses_bad_signals_and_stopped_containers(sdk) -> None:
    ctr = sleeper(sdk)
    for bad in ("NOPE", "0", "99", "-1"):
        with pytest.raises(docker.errors.APIError) as err:
            ctr.kill(signal=bad)
        assert err.value.status_code == 400, bad
    ctr.kill()
    ctr.wait(timeout=10)
    with pytest.raises(docker.errors.APIError, match="is not running") as err:
        ctr.kill()
    assert err.value.status_code == 409


# list ------------------------------------------------------------------------------------
def test_list_filters_labels_limit_and_size(sdk) -> None:
    a = sleeper(sdk, name="web-a", labels={"tier": "web", "x": "1"}, ports={"80/tcp": 18090})
    b = sleeper(sdk, name="db-b", labels={"tier": "db"})
    done = sdk.containers.run("busybox", ["sh", "-c", "echo x > f; exit 3"], detach=True, name="done-c")
    done.wait(timeout=10)
    ids = lambda **kw: {c["Id"] for c in sdk.api.containers(**kw)}  # noqa: E731
    assert ids() == {a.id, b.id}
    assert ids(all=True) == {a.id, b.id, done.id}
    assert ids(filters={"label": "tier=web"}) == {a.id}
    assert ids(filters={"label": ["tier"]}) == {a.id, b.id}
    assert ids(filters={"name": "^/web"}) == {a.id}
    assert ids(filters={"name": "^/(web|db)-[ab]$"}) == {a.id, b.id}
    assert ids(filters={"name": "d.-"}) == {b.id}  # a regular expression, searched in the name
    assert ids(filters={"id": a.id[:8]}) == {a.id}
    assert ids(filters={"status": "exited"}) == {done.id}  # a status filter lists stopped ones
    assert ids(all=True, filters={"exited": "3"}) == {done.id}
    assert ids(all=True, filters={"exited": "0"}) == set()
    assert ids(all=True, filters={"ancestor": "busybox"}) == {a.id, b.id, done.id}
    assert ids(all=True, filters={"ancestor": "nosuch:1"}) == set()
    assert ids(all=True, filters={"since": a.id}) == {b.id, done.id}
    assert ids(all=True, filters={"before": "db-b"}) == {a.id}
    assert ids(filters={"publish": "80"}) == {a.id}
    assert ids(filters={"expose": "80/tcp"}) == {a.id}
    assert ids(filters={"health": "none"}) == {a.id, b.id}
    assert ids(filters={"network": "bridge"}) == {a.id, b.id}
    assert len(sdk.api.containers(limit=1)) == 1
    [row] = sdk.api.containers(all=True, size=True, filters={"name": "done-c"})
    assert row["SizeRw"] >= 2 and row["SizeRootFs"] >= row["SizeRw"]
    assert row["Labels"] == {} and sdk.api.containers(filters={"name": "web-a"})[0]["Labels"] == \
        {"tier": "web", "x": "1"}
    assert sdk.api.inspect_container(a.id)["Config"]["Labels"] == {"tier": "web", "x": "1"}


@pytest.mark.parametrize("filters", [{"nosuch": "x"}, {"status": "sleeping"}, {"exited": "x"},
                                     {"health": "ok"}, {"name": "("}, {"name": "a" * 300},
                                     {"name": "(a+)+$"}, {"name": "(a|aa)*b"}, {"name": "(x)\\1"},
                                     {"publish": "80/xyz"}, {"publish": "0-99999"}])
def test_list_refuses_bad_filters(sdk, filters: dict[str, str]) -> None:
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.containers(all=True, filters=filters)
    assert err.value.status_code == 400


def test_list_before_an_unknown_container_is_404(sdk) -> None:
    with pytest.raises(docker.errors.NotFound):
        sdk.api.containers(all=True, filters={"before": "nosuch"})


# wait ------------------------------------------------------------------------------------
def test_wait_shapes(sdk) -> None:
    ctr = sdk.containers.create("busybox", ["true"])
    with pytest.raises(docker.errors.APIError) as err:
        sdk.api.wait(ctr.id, condition="bogus")
    assert err.value.status_code == 400
    assert sdk.api.wait(ctr.id) == {"StatusCode": 0, "Error": None}  # created: not running already
    ctr.remove()
    with pytest.raises(docker.errors.NotFound):
        sdk.api.wait(ctr.id, condition="removed")
    auto = sdk.containers.run("busybox", ["sleep", "1"], detach=True, auto_remove=True)
    assert sdk.api.wait(auto.id, condition="removed", timeout=10)["StatusCode"] == 0


# events (in-process engine, to read its bus) ----------------------------------------------
@pytest.fixture
def local(tmp_path: Path, engine: Engine):
    sock = tmp_path / "run" / "ops.sock"
    server = serve(sock, engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = docker.DockerClient(base_url=f"unix://{sock}", timeout=15)
    yield client, engine
    for c in client.containers.list(all=True):
        c.remove(force=True)
    client.close()
    server.shutdown()
    server.server_close()


def test_operations_emit_docker_events(local) -> None:
    sdk, engine = local
    ctr = sleeper(sdk, name="ev")
    ctr.pause()
    ctr.unpause()
    ctr.rename("ev2")
    sdk.api.update_container(ctr.id, mem_limit=32 << 20)
    ctr.kill(signal="HUP")
    assert until(lambda: not engine.containers.get(ctr.id).running)
    seen = [(e.action, e.attributes) for e in engine.events.past(0) if e.actor_id == ctr.id]
    actions = [a for a, _ in seen]
    for action in ("pause", "unpause", "rename", "update", "kill"):
        assert action in actions
    attrs = dict(seen)
    assert attrs["rename"]["oldName"] == "/ev" and attrs["rename"]["name"] == "ev2"
    assert attrs["kill"]["signal"] == "1" and attrs["pause"]["image"] == "busybox"


@pytest.mark.skipif(DOCKER is None, reason="docker CLI missing")
def test_docker_cli_top_stats_pause_ps_and_rename(eng: EngineProcess, sdk) -> None:
    ctr = sleeper(sdk, name="cli1")
    write_figures(cgroup_dir(eng, ctr.id))
    out = eng.docker("top", "cli1")
    assert out.returncode == 0 and out.stdout.split()[:8] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert out.stdout.rstrip().endswith("sleep 60")
    out = eng.docker("stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}} {{.BlockIO}}", "cli1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1023KiB", "/", "64MiB", "3", "512B", "/", "1.02kB"]  # usage - inactive_file
    assert eng.docker("pause", "cli1").returncode == 0
    out = eng.docker("ps", "--filter", "status=paused", "--format", "{{.Names}} {{.Status}}")
    assert out.stdout.strip().startswith("cli1 Up") and out.stdout.strip().endswith("(Paused)")
    assert eng.docker("unpause", "cli1").returncode == 0
    assert eng.docker("rename", "cli1", "cli2").returncode == 0
    assert eng.docker("ps", "--format", "{{.Names}}").stdout.split() == ["cli2"]


def test_a_stats_stream_ends_when_its_client_hangs_up(sdk, eng: EngineProcess) -> None:
    ctr = sleeper(sdk)
    before = eng.threads()
    url = sdk.api._url("/containers/{0}/stats", ctr.id)
    streams = [sdk.api._get(url, params={"stream": "1"}, stream=True) for _ in range(3)]
    for response in streams:
        assert response.status_code == 200 and b"cpu_stats" in next(response.iter_lines())
    assert eng.threads() > before
    for response in streams:
        response.close()
    assert until(lambda: eng.threads() <= before, timeout=10), "stats threads linger"


def test_ancestor_matches_images_built_on_the_given_one(sdk) -> None:
    base, top_layer = tar_bytes({"base": b"1"}), tar_bytes({"app": b"2"})
    sdk.images.load(docker_save([base], ["anc-base:1"], cmd=["sleep", "60"]))
    sdk.images.load(docker_save([base, top_layer], ["anc-child:1"], cmd=["sleep", "60"]))
    sdk.images.load(docker_save([top_layer], ["anc-other:1"], cmd=["sleep", "60"]))
    child = sdk.containers.create("anc-child:1")
    other = sdk.containers.create("anc-other:1")
    ids = lambda ref: {c["Id"] for c in sdk.api.containers(all=True, filters={"ancestor": ref})}  # noqa: E731
    assert ids("anc-base:1") == {child.id}
    assert ids("anc-child:1") == {child.id}
    assert ids("anc-other:1") == {other.id} and ids(other.image.id) == {other.id}
    assert ids("anc-other") == set()  # anc-other:latest, which does not exist
