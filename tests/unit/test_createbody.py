"""A lab file's container as a create body: what each field becomes, and that the engine reads
it as it read the `labctl run -d` line that carried the same container before."""

from __future__ import annotations

from typing import Any

import pytest
from labagent import cli
from labagent.api.createbody import spec_from_body
from labagent.contract import ContainerSpec

from provisioner import labfile
from provisioner.createbody import create_body
from provisioner.labfile import ContainerEntry

FULL = {
    "image": "registry.example:5000/team/web:1.2", "command": ["sh", "-c", "echo $A; sleep 1"],
    "publish": ["127.0.0.1:8081:81/udp", "8082:81", "8083:81"], "env": {"A": "1", "B": "x y"},
    "memory": "1.5g", "cpus": 0.5, "pids-limit": 64,
}


def spec(**fields: Any) -> ContainerSpec:
    return ContainerEntry.model_validate(fields).spec()


def test_every_field_of_the_lab_file_maps_to_its_docker_field() -> None:
    assert create_body(spec(**FULL)) == {
        "Image": "registry.example:5000/team/web:1.2",
        "Cmd": ["sh", "-c", "echo $A; sleep 1"],
        "Env": ["A=1", "B=x y"],
        "ExposedPorts": {"81/udp": {}, "81/tcp": {}},
        "HostConfig": {
            "PortBindings": {
                "81/udp": [{"HostIp": "127.0.0.1", "HostPort": "8081"}],
                "81/tcp": [{"HostIp": "", "HostPort": "8082"}, {"HostIp": "", "HostPort": "8083"}],
            },
            "AutoRemove": False,
            "Memory": 3 << 29,
            "NanoCpus": 500_000_000,
            "PidsLimit": 64,
        },
    }


def test_what_the_lab_file_leaves_out_is_left_to_the_image_and_the_engine() -> None:
    assert create_body(spec(image="busybox")) == {
        "Image": "busybox", "Cmd": None, "Env": [], "ExposedPorts": {},
        "HostConfig": {"PortBindings": {}, "AutoRemove": False},
    }


def test_the_two_node_labs_web_container_gets_its_64_mib() -> None:
    """What tests/e2e/test_engine.py::test_lab_file_containers_run_after_create inspects."""
    web = labfile.load("two-node").nodes["node1"].containers["web"]
    assert isinstance(web, ContainerSpec)
    body = create_body(web)
    assert body["HostConfig"]["Memory"] == 64 * 2**20
    assert body["Cmd"] == ["httpd", "-f", "-p", "80"]
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}


class CapturingClient:
    """labctl's client, keeping the create body `labctl run` sends."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    def json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        self.bodies.append(body)
        return {"Id": "c0ffee"}

    def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        class Empty:
            def read(self) -> bytes:
                return b""

        return Empty()


@pytest.mark.parametrize(("fields", "labctl_argv"), [
    ({"image": "busybox", "command": ["httpd", "-f", "-p", "80"], "publish": ["8080:80"], "memory": "64M"},
     ["-p", "8080:80", "--memory", "64M", "busybox", "httpd", "-f", "-p", "80"]),
    (FULL, ["-p", "127.0.0.1:8081:81/udp", "-p", "8082:81", "-p", "8083:81", "-e", "A=1", "-e", "B=x y",
            "--memory", "1.5g", "--cpus", "0.5", "--pids-limit", "64", FULL["image"], *FULL["command"]]),
    ({"image": "busybox"}, ["busybox"]),
    ({"image": "busybox", "pids-limit": -1, "cpus": 2}, ["--cpus", "2.0", "--pids-limit", "-1", "busybox"]),
])
def test_the_engine_reads_the_body_as_it_read_the_labctl_line(
    fields: dict[str, Any], labctl_argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The line the host used to send (`labctl run -d --name NAME ...`, as start_container_command
    wrote it) and the body it sends now give the engine the same container."""
    client = CapturingClient()
    args = cli.parser().parse_args(["run", "-d", "--name", "web", *labctl_argv])
    assert cli.cmd_run(client, args) == 0  # type: ignore[arg-type]
    (labctl_body,) = client.bodies
    assert spec_from_body(create_body(spec(**fields))) == spec_from_body(labctl_body)


def test_a_value_that_does_not_parse_is_a_value_error() -> None:
    """Values are checked with the lab file; one edited into a ledger is refused here."""
    with pytest.raises(ValueError, match="not a port publication"):
        create_body(ContainerSpec(image="busybox", publish=["notaport"]))
    with pytest.raises(ValueError, match="not a memory size"):
        create_body(ContainerSpec(image="busybox", memory="lots"))
