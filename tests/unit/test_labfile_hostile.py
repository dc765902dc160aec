"""Hostile lab files: values cannot inject structure, and every value is checked on the host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import labfile
from provisioner.errors import LabFileError


def parse(text: str, environ: dict[str, str] | None = None) -> labfile.LabSpec:
    return labfile.parse(text, "lab.yaml", environ or {})


def error_of(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(LabFileError) as caught:
        parse(text, environ)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("lab.yaml: ")
    return message


def with_container(**fields: str) -> str:
    body = ", ".join(f"{key}: {value}" for key, value in {"image": "busybox", **fields}.items())
    return f"name: demo\nnodes:\n  n1:\n    containers:\n      web: {{{body}}}\n"


# --- ${VAR} expansion -------------------------------------------------------------------------

INJECTIONS = [
    "x\nnodes: {evil: {}}",
    "x}, evil: {memory: 1G}, y: {",
    "'\nlinks: []\n",
    "x\n  evil: {}",
    "${OTHER}",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_a_variable_cannot_add_nodes_or_keys(value: str) -> None:
    text = "name: demo\nnodes:\n  n1:\n    containers:\n      web: {image: busybox, env: {A: \"${VAR}\"}}\n"
    spec = parse(text, {"VAR": value, "OTHER": "expanded twice"})
    assert list(spec.nodes) == ["n1"]
    assert spec.nodes["n1"].containers["web"].env == {"A": value}  # the value, as it is


def test_a_variable_in_a_name_is_a_value_and_is_checked_as_one() -> None:
    message = error_of("name: ${VAR}\nnodes: {n1: {}}\n", {"VAR": "x\nnodes: {evil: {}}"})
    assert "name: 'x\\nnodes: {evil: {}}' is not a DNS label" in message


def test_comments_are_not_expanded() -> None:
    text = "# ${UNSET_VAR} in a comment\nname: demo  # and ${UNSET_TOO}\nnodes: {n1: {}}  # ${X:-y}\n"
    assert parse(text).name == "demo"


def test_keys_are_not_expanded() -> None:
    assert "nodes.'${N}'" in error_of("name: demo\nnodes: {'${N}': {}}\n", {"N": "n1"})


def test_an_unset_variable_names_its_field() -> None:
    assert "nodes.n1.memory: ${MEM} is not set" in error_of("name: demo\nnodes:\n  n1: {memory: \"${MEM}\"}\n")


def test_expanded_numbers_still_validate() -> None:
    spec = parse("name: demo\nnodes:\n  n1: {cpus: \"${CPUS:-2}\", memory: \"${MEM:-1G}\"}\n")
    assert (spec.nodes["n1"].cpus, spec.nodes["n1"].memory_mib) == (2, 1024)


def test_alias_bombs_are_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    assert "once YAML aliases are expanded" in error_of("\n".join(lines) + "\nname: demo\nnodes: {n1: {}}\n")


# --- values checked on the host ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (with_container(publish="[notaport]"), "nodes.n1.containers.web.publish.0: 'notaport' is not a port"),
        (with_container(publish="['80']"), "publish.0: '80' is not a port publication"),
        (with_container(publish="['0:80']"), "the host port 0 is not in 1-65535"),
        (with_container(publish="['8080:65536']"), "the container port 65536 is not in 1-65535"),
        (with_container(publish="['8080:80/sctp']"), "the protocol is tcp or udp"),
        (with_container(publish="['8000-8010:80']"), "is not a port publication"),
        (with_container(publish="['999.1.1.1:8080:80']"), "'999.1.1.1' is not an IPv4 address"),
        (with_container(publish="['8080:80 -v /:/host']"), "is not a port publication"),
        (with_container(memory="lots"), "nodes.n1.containers.web.memory: 'lots' is not a memory size"),
        (with_container(memory="1k"), "is not between 6 MiB and 1 TiB"),
        (with_container(memory="'-1g'"), "is not a memory size"),
        (with_container(cpus="-1"), "nodes.n1.containers.web.cpus"),
        (with_container(cpus=".inf"), "nodes.n1.containers.web.cpus"),
        (with_container(**{"pids-limit": "-5"}), "nodes.n1.containers.web.pids-limit"),
        (with_container(image="Busybox"), "nodes.n1.containers.web.image: 'Busybox' is not an image reference"),
        (with_container(image="'--privileged'"), "'--privileged' is not an image reference"),
        (with_container(image="'busybox; touch /tmp/pwned'"), "is not an image reference"),
        (with_container(image="'busybox:'"), "is not an image reference"),
        (with_container(image="'busybox@sha256:abc'"), "is not an image reference"),
        (with_container(image="'../../etc'"), "is not an image reference"),
        (with_container(command="'httpd -f'"), "nodes.n1.containers.web.command: Input should be a valid list"),
        (with_container(command="[httpd, 80]"), "nodes.n1.containers.web.command.1: Input should be a valid string"),
        (with_container(command='["a\\0b"]'), "command.0: holds a NUL character"),
        (with_container(env="{'A B': x}"), "env.'A B': 'A B' is not a variable name"),
        (with_container(env="{'A=B': x}"), "is not a variable name"),
        (with_container(env="{A: [x]}"), "nodes.n1.containers.web.env.A: Input should be a valid string"),
        (with_container(privileged="true"), "nodes.n1.containers.web.privileged: unknown field"),
        ("name: demo\nnodes: {n1: {containers: {'web; touch /tmp/pwned': {image: busybox}}}}\n",
         "nodes.n1.containers: 'web; touch /tmp/pwned' is not a container name"),
        ("name: demo\nnodes: {n1: {containers: {-web: {image: busybox}}}}\n", "'-web' is not a container name"),
        ("name: demo\nnodes: {n1: {containers: {a: {image: busybox, publish: ['80:80']}, "
         "b: {image: busybox, publish: ['80:81']}}}}\n", "b: '80:81' takes a host port a already publishes"),
        ("name: demo\nnodes: {n1: {memory: lots}}\n", "nodes.n1.memory: 'lots' is not a size"),
        ("name: demo\nnodes: {n1: {memory: -512}}\n", "nodes.n1.memory"),
        ("name: demo\nnodes: {n1: {memory: yes}}\n", "nodes.n1.memory: True is not a number or a size"),
        ("name: demo\nnodes: {n1: {memory: 2000T}}\n", "nodes.n1.memory: 2000T is above 1024 GiB"),
        ("name: demo\nnodes: {n1: {cpus: true}}\n", "nodes.n1.cpus"),
        ("name: demo\nnodes: {n1: {disk: -Fraw}}\n", "nodes.n1.disk: '-Fraw' is not a size"),
        ("name: demo\nnodes: {n1: {disk: '8G -o backing_file=/etc/shadow'}}\n", "nodes.n1.disk"),
        ("name: demo\nnodes: {n1: {disk: 0}}\n", "nodes.n1.disk: 0 is not a disk size between 1G and 16T"),
        ("name: demo\nnodes: {n1: {disk: 100T}}\n", "is not a disk size between 1G and 16T"),
        ("name: demo\ndefaults: {disk: -Fraw}\nnodes: {n1: {}}\n", "defaults.disk"),
        ("name: demo\nnodes: {n1: {}}\nextra: 1\n", "extra: unknown field"),
        ("name: demo\nnodes: {n1: {}}\nlinks: [{endpoints: [n1:eth1, n2:eth1], subnet: 10.9.0.0/24, x: 1}]\n",
         "links.0.x: unknown field"),
        ("name: demo\nnodes: {\"n1\\n\": {}}\n", "nodes.'n1\\n': 'n1\\n' is not a DNS label"),
        ("name: \"demo\\n\"\nnodes: {n1: {}}\n", "name: 'demo\\n' is not a DNS label"),
        ("name: demo\nnodes: {n1: {}}\nlinks: [{endpoints: [\"n1:eth1\\n\", n2:eth1], subnet: 10.9.0.0/24}]\n",
         "links.0.endpoints"),
    ],
)
def test_bad_values_are_refused_with_file_node_and_field(text: str, expected: str) -> None:
    assert expected in error_of(text)


@pytest.mark.parametrize(
    "image",
    ["busybox", "busybox:1.36", "library/busybox", "registry.example:5000/team/web:1.2", "localhost/a__b",
     "a.b-c/d.e_f:TAG_1.0-x", f"busybox@sha256:{'a' * 64}", f"web:1@sha256:{'0' * 64}", "a" * 64],
)
def test_image_references_docker_accepts_pass(image: str) -> None:
    assert parse(with_container(image=f"'{image}'")).nodes["n1"].containers["web"].image == image


@pytest.mark.parametrize("publish", ["8080:80", "8080:80/udp", "127.0.0.1:8080:80/tcp", "1:65535"])
def test_publications_the_engine_accepts_pass(publish: str) -> None:
    assert parse(with_container(publish=f"['{publish}']")).nodes["n1"].containers["web"].publish == [publish]


def test_disk_sizes_reach_qemu_img_in_one_canonical_form() -> None:
    spec = parse("name: demo\ndefaults: {disk: 8G}\nnodes: {n1: {}, n2: {disk: 10240}, n3: {disk: 1.5T}}\n")
    assert [node.disk for node in spec.nodes.values()] == ["8192M", "10240M", "1572864M"]


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: demo\nnodes: {n1: {}}\n" + "#" * (2 << 20))
    with pytest.raises(LabFileError, match="larger than 1 MiB"):
        labfile.load(str(path))


# --- the CLI: exit 2 before anything exists ---------------------------------------------------

@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (with_container(publish="[notaport]"), "nodes.n1.containers.web.publish.0"),
        (with_container(memory="lots"), "nodes.n1.containers.web.memory"),
        ("name: hostile\nnodes: {n1: {disk: -Fraw}}\n", "nodes.n1.disk: '-Fraw'"),
        ("name: hostile\nnodes: {n1: {disk: 2G}}\n", "nodes.n1.disk: 2048M is smaller than the debian-12 image"),
        ("name: hostile\nnodes: {n1: {containers: {'a;b': {image: busybox}}}}\n", "is not a container name"),
    ],
)
def test_create_refuses_before_anything_is_made(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(content)
    home = tmp_path / "home"
    env = {"PATH": "/usr/bin:/bin", "LAB_HOME": str(home), "LAB_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "provisioner.cli", "create", str(path)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (home / "labs").exists() or not any((home / "labs").iterdir())
    assert not (tmp_path / "cache").exists()
