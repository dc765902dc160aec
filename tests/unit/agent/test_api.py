"""The API through a real unix socket, with crun, network and mounts faked."""

import http.client
import json
import socket
import struct
import time

import pytest
from labagent.client import ApiError, UnixConnection
from labagent.containers.logs import read_frames

from .conftest import docker_save, tar_bytes


def raw(client, method, path, body=None, headers=None):
    conn = UnixConnection(client.path)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    conn.request(method, path, body=data, headers=headers or {})
    resp = conn.getresponse()
    return resp, resp.read()


def create(client, name=None, cmd=None, **extra):
    body = {"Image": "busybox", "Cmd": cmd or ["sleep", "30"], **extra}
    return client.json("POST", "/containers/create", {"name": name}, body)["Id"]


def run(client, name, cmd, **extra):
    cid = create(client, name, cmd, **extra)
    client.request("POST", f"/containers/{cid}/start").read()
    return cid


def wait_exit(client, ref):
    return client.json("POST", f"/containers/{ref}/wait")


def test_ping_head_and_get_announce_the_api_version(client):
    resp, body = raw(client, "GET", "/_ping")
    assert (resp.status, body) == (200, b"OK")
    assert resp.getheader("Api-Version") == "1.43"
    resp, body = raw(client, "HEAD", "/_ping")
    assert resp.status == 200 and body == b"" and resp.getheader("Api-Version") == "1.43"


def test_versioned_and_unversioned_paths(client):
    for path in ("/version", "/v1.43/version", "/v1.24/version"):
        resp, body = raw(client, "GET", path)
        assert resp.status == 200 and json.loads(body)["ApiVersion"] == "1.43"
    resp, body = raw(client, "GET", "/v1.99/version")
    assert resp.status == 400 and "too new" in json.loads(body)["message"]
    resp, body = raw(client, "GET", "/v1.43/nothing/here")
    assert resp.status == 404 and json.loads(body) == {"message": "page not found"}
    info = client.json("GET", "/info")
    assert info["CgroupVersion"] == "2" and info["Images"] == 1


def test_busybox_is_listed_on_first_start(client):
    images = client.json("GET", "/images/json")
    assert [i["RepoTags"] for i in images] == [["busybox:latest"]]
    assert client.json("GET", "/images/busybox/json")["Config"]["Cmd"] == ["sh"]


def test_create_errors_have_docker_bodies_and_statuses(client, engine):
    cases = [
        ({"Image": "nosuch"}, 404, "No such image: nosuch:latest"),
        ({"Image": "busybox", "HostConfig": {"Memory": "64Q"}}, 400, "invalid size"),
        ({"Image": "busybox", "HostConfig": {"NanoCpus": 1, "CpuPeriod": 100000}}, 400, "Conflicting"),
        ({"Image": "busybox", "Tty": "yes"}, 400, "Tty"),
        ({"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}},
         400, "invalid port"),
    ]
    for body, status, message in cases:
        resp, data = raw(client, "POST", "/v1.43/containers/create?name=x", body)
        assert resp.status == status, data
        assert message in json.loads(data)["message"]
    assert engine.containers.all() == []
    assert list((engine.root / "containers").iterdir()) == []  # nothing half-made


def test_name_in_use_is_409(client):
    create(client, "web")
    with pytest.raises(ApiError) as err:
        create(client, "web")
    assert err.value.status == 409 and 'name "/web" is already in use' in err.value.message


def test_run_logs_wait_with_multiplexed_frames(client):
    cid = run(client, "echo", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert wait_exit(client, "echo") == {"StatusCode": 3, "Error": None}
    resp, body = raw(client, "GET", "/v1.43/containers/echo/logs?stdout=1&stderr=1")
    assert resp.getheader("Content-Type") == "application/vnd.docker.multiplexed-stream"
    frames = list(read_frames(_reader(body)))
    assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")]
    assert body[:8] in (struct.pack(">BxxxL", 1, 4), struct.pack(">BxxxL", 2, 4))
    only_err = raw(client, "GET", f"/containers/{cid[:8]}/logs?stderr=1")[1]
    assert list(read_frames(_reader(only_err))) == [(2, b"err\n")]
    state = client.json("GET", f"/containers/{cid}/json")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 3 and not state["OOMKilled"]


def _reader(data):
    buf = bytearray(data)

    def read(n):
        chunk = bytes(buf[:n])
        del buf[:n]
        return chunk

    return read


def test_logs_tail_and_follow(client):
    run(client, "count", ["sh", "-c", "for i in 1 2 3 4; do echo $i; done"])
    wait_exit(client, "count")
    tail = list(client.frames("GET", "/containers/count/logs", {"stdout": 1, "tail": 2}))
    assert tail == [(1, b"3\n"), (1, b"4\n")]
    run(client, "slow", ["sh", "-c", "echo a; sleep 0.3; echo b"])
    followed = [d for _, d in client.frames("GET", "/containers/slow/logs", {"stdout": 1, "follow": 1})]
    assert b"".join(followed) == b"a\nb\n"  # follow ends when the container does


def test_lookup_by_name_id_and_prefix(client):
    cid = create(client, "lookup")
    for ref in ("lookup", cid, cid[:10]):
        assert client.json("GET", f"/containers/{ref}/json")["Id"] == cid
    with pytest.raises(ApiError) as err:
        client.json("GET", "/containers/nosuch/json")
    assert err.value.status == 404 and err.value.message == "No such container: nosuch"


def test_inspect_and_list_shapes(client, engine):
    cid = run(client, "web", ["sleep", "30"], Env=["A=1"],
              HostConfig={"Memory": 64 << 20, "PidsLimit": 50,
                          "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "18080"}]}})
    info = client.json("GET", "/containers/web/json")
    assert info["Name"] == "/web" and info["State"]["Running"] and info["State"]["Pid"] > 0
    assert info["HostConfig"]["Memory"] == 64 << 20 and info["HostConfig"]["PidsLimit"] == 50
    assert info["NetworkSettings"]["IPAddress"] == "172.31.0.2"
    assert info["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]}
    assert info["Config"]["Env"] == ["A=1"]
    assert info["GraphDriver"]["Data"]["UpperDir"].endswith(f"{cid}/upper")
    listed = client.json("GET", "/containers/json")
    assert [c["Names"] for c in listed] == [["/web"]] and listed[0]["Status"].startswith("Up")
    assert listed[0]["Ports"] == [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"}]
    rules = engine.seams.network.rules
    assert [(r.host_port, r.ip, r.port) for r in rules] == [(18080, "172.31.0.2", 80)]
    hosts = (engine.containers.bundle(cid) / "hosts").read_text()
    assert "172.31.0.2\tweb" in hosts


def test_hosts_lists_siblings_and_follows_them(client, engine):
    a = run(client, "a", ["sleep", "30"])
    run(client, "b", ["sleep", "30"])
    hosts = (engine.containers.bundle(a) / "hosts").read_text()
    assert "172.31.0.2\ta" in hosts and "172.31.0.3\tb" in hosts
    client.request("POST", "/containers/b/kill").read()
    wait_exit(client, "b")
    assert "\tb " not in (engine.containers.bundle(a) / "hosts").read_text()


def test_port_already_published_is_409(client, engine):
    ports = {"PortBindings": {"80/tcp": [{"HostPort": "18081"}]}}
    run(client, "first", ["sleep", "30"], HostConfig=ports)
    with pytest.raises(ApiError) as err:
        create(client, "second", HostConfig=ports)
    assert err.value.status == 409 and "port is already allocated" in err.value.message
    assert [c.name for c in engine.containers.all()] == ["first"]
    engine.seams.network.busy_ports.add(18082)
    with pytest.raises(ApiError) as err:
        create(client, "third", HostConfig={"PortBindings": {"80/tcp": [{"HostPort": "18082"}]}})
    assert err.value.status == 409


def test_failed_start_rolls_back(client, engine):
    net = engine.seams.network
    cid = create(client, "broken", HostConfig={"PortBindings": {"80/tcp": [{"HostPort": "18083"}]}})
    net.fail_attach = True
    with pytest.raises(ApiError) as err:
        client.request("POST", "/containers/broken/start")
    assert err.value.status == 500 and "veth" in err.value.message
    assert client.json("GET", "/containers/broken/json")["State"]["Status"] == "created"
    assert net.rules == [] and net.attached == {}
    assert engine.seams.mounter.mounted == set()
    assert not (engine.seams.cgroups.base / cid).exists()
    net.fail_attach = False
    client.request("POST", "/containers/broken/start").read()
    assert client.json("GET", "/containers/broken/json")["State"]["Running"]


def test_start_of_a_missing_executable_reports_crun_error(client):
    create(client, "nocmd", ["no-such-binary-xyz"])
    with pytest.raises(ApiError) as err:
        client.request("POST", "/containers/nocmd/start")
    assert err.value.status == 400 and "not found" in err.value.message
    state = client.json("GET", "/containers/nocmd/json")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 127


def test_stop_kill_and_remove(client, engine):
    cid = run(client, "svc", ["sleep", "30"])
    resp, body = raw(client, "DELETE", "/containers/svc")
    assert resp.status == 409 and "You cannot remove a running container" in json.loads(body)["message"]
    t0 = time.monotonic()
    client.request("POST", "/containers/svc/stop", {"t": 5}).read()
    assert time.monotonic() - t0 < 4  # sleep dies of SIGTERM, no need for the timeout
    info = client.json("GET", "/containers/svc/json")["State"]
    assert info["Status"] == "exited" and info["ExitCode"] == 143
    assert raw(client, "POST", "/containers/svc/stop")[0].status == 304
    assert raw(client, "POST", "/containers/svc/kill")[0].status == 409
    client.request("DELETE", "/containers/svc").read()
    assert not engine.containers.bundle(cid).exists()
    run(client, "forced", ["sleep", "30"])
    client.request("DELETE", "/containers/forced", {"force": 1}).read()
    assert client.json("GET", "/containers/json", {"all": 1}) == []


def test_wait_is_held_open_until_the_next_exit(client):
    cid = create(client, "later", ["sh", "-c", "exit 7"])
    conn = UnixConnection(client.path)
    conn.request("POST", f"/v1.43/containers/{cid}/wait?condition=next-exit")
    resp = conn.getresponse()  # headers arrive before the container even starts
    assert resp.status == 200
    client.request("POST", f"/containers/{cid}/start").read()
    assert json.loads(resp.read())["StatusCode"] == 7


def test_exec_keeps_path_when_the_container_has_its_own_env(client):
    cid = client.json("POST", "/containers/create", {"name": "envbox"},
                      {"Image": "busybox", "Cmd": ["sleep", "30"], "Env": ["GREETING=hi"]})["Id"]
    client.request("POST", f"/containers/{cid}/start").read()
    body = {"Cmd": ["sh", "-c", "echo $GREETING"], "AttachStdout": True, "AttachStderr": True}
    eid = client.json("POST", "/containers/envbox/exec", body=body)["Id"]
    _, body = raw(client, "POST", f"/v1.43/exec/{eid}/start", {"Detach": False, "Tty": False})
    assert list(read_frames(_reader(body))) == [(1, b"hi\n")]
    assert client.json("GET", f"/exec/{eid}/json")["ExitCode"] == 0


def test_exec_runs_with_the_containers_confinement_and_its_own_user(client, engine):
    cid = client.json("POST", "/containers/create", {"name": "confined"},
                      {"Image": "busybox", "Cmd": ["sleep", "30"], "User": "1000:1000",
                       "HostConfig": {"CapDrop": ["NET_RAW"]}})["Id"]
    client.request("POST", f"/containers/{cid}/start").read()
    sent = engine.seams.runtime.state_dir / f"{cid}.exec.json"
    for user, expected in (("", 1000), ("4242:4242", 4242)):
        body = {"Cmd": ["true"], "User": user, "AttachStdout": True}
        eid = client.json("POST", "/containers/confined/exec", body=body)["Id"]
        raw(client, "POST", f"/v1.43/exec/{eid}/start", {"Detach": False, "Tty": False})
        process = json.loads(sent.read_text())
        assert process["user"]["uid"] == expected  # the container's user unless the exec names one
        assert process["oomScoreAdj"] == 0 and process["noNewPrivileges"] is True
        assert "CAP_NET_RAW" not in process["capabilities"]["bounding"]
        assert "CAP_CHOWN" in process["capabilities"]["effective"]
    with pytest.raises(ApiError, match="Privileged"):
        client.request("POST", "/containers/confined/exec", body={"Cmd": ["true"], "Privileged": True})
    assert not list(engine.containers.bundle(cid).glob("exec-*.json"))  # process files do not pile up


def test_exec_streams_output_and_records_the_exit_code(client):
    run(client, "box", ["sleep", "30"])
    body = {"Cmd": ["sh", "-c", "echo hi; echo no >&2; exit 4"], "AttachStdout": True, "AttachStderr": True}
    eid = client.json("POST", "/containers/box/exec", body=body)["Id"]
    resp, body = raw(client, "POST", f"/v1.43/exec/{eid}/start", {"Detach": False, "Tty": False})
    assert resp.status == 200
    assert sorted(read_frames(_reader(body))) == [(1, b"hi\n"), (2, b"no\n")]
    assert client.json("GET", f"/exec/{eid}/json")["ExitCode"] == 4
    resp, _ = raw(client, "POST", f"/exec/{eid}/start", {})
    assert resp.status == 409


def test_exec_upgrade_answers_101(client):
    run(client, "up", ["sleep", "30"])
    eid = client.json("POST", "/containers/up/exec", body={"Cmd": ["echo", "upgraded"]})["Id"]
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(client.path)
    body = b'{"Detach":false,"Tty":false}'
    head = (b"POST /v1.43/exec/%s/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (eid.encode(), len(body)))
    sock.sendall(head + body)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, stream = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert list(read_frames(_reader(stream))) == [(1, b"upgraded\n")]


def test_exec_in_a_stopped_container_is_409(client):
    create(client, "idle")
    resp, body = raw(client, "POST", "/containers/idle/exec", {"Cmd": ["true"]})
    assert resp.status == 409 and "is not running" in json.loads(body)["message"]


def test_client_dropping_mid_stream_does_not_hurt_the_engine(client):
    run(client, "chatty", ["sh", "-c", "while true; do echo spam; sleep 0.01; done"])
    for _ in range(3):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(client.path)
        sock.sendall(b"GET /containers/chatty/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(100)
        sock.close()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(client.path)
    sock.sendall(b"POST /containers/chatty/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    sock.close()
    assert raw(client, "GET", "/_ping")[1] == b"OK"
    assert client.json("GET", "/containers/chatty/json")["State"]["Running"]


def test_load_through_the_api_and_chunked_upload(client):
    data = docker_save([tar_bytes({"hello": b"world"})], ["hello:1"])
    resp = client.request("POST", "/images/load", raw=data, length=len(data))
    assert json.loads(resp.read().splitlines()[0]) == {"stream": "Loaded image: hello:1\n"}
    data2 = docker_save([tar_bytes({"x": b"y"})], ["chunky:1"])
    conn = UnixConnection(client.path)
    conn.request("POST", "/images/load", body=iter([data2[:1000], data2[1000:]]),
                 headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
    assert b"chunky:1" in conn.getresponse().read()
    tags = sorted(t for i in client.json("GET", "/images/json") for t in i["RepoTags"])
    assert tags == ["busybox:latest", "chunky:1", "hello:1"]
    resp, body = raw(client, "POST", "/images/load", b"not a tarball")  # dockerd reports it in-band
    assert resp.status == 200 and "not a tar archive" in json.loads(body)["errorDetail"]["message"]


def test_pull_explains_how_to_get_images(client):
    resp, body = raw(client, "POST", "/v1.43/images/create?fromImage=alpine&tag=latest")
    assert resp.status == 404 and "lab image push" in json.loads(body)["message"]


def test_keep_alive_serves_several_requests_on_one_connection(client):
    conn = UnixConnection(client.path)
    for _ in range(3):
        conn.request("GET", "/_ping")
        assert conn.getresponse().read() == b"OK"
    assert isinstance(conn, http.client.HTTPConnection)


def test_create_rejects_an_unknown_pid_mode():
    from labagent.api.createbody import spec_from_body
    from labagent.errors import BadParameter

    assert spec_from_body({"Image": "busybox", "HostConfig": {"PidMode": "host"}}).pid_mode == "host"
    with pytest.raises(BadParameter, match="pid mode 'container:x'"):
        spec_from_body({"Image": "busybox", "HostConfig": {"PidMode": "container:x"}})
