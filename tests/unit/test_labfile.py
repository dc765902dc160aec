"""The lab file model: defaults, address assignment, and errors that name file, field and node."""

from __future__ import annotations

import ipaddress

import pytest

from provisioner import labfile
from provisioner.errors import LabFileError, UserInputError

TWO_NODE = """
name: demo
defaults: {cpus: 1, memory: 512M}
nodes:
  node1: {memory: 1G}
  node2: {}
links:
  - endpoints: [node1:eth1, node2:eth1]
    subnet: 10.10.0.0/24
"""


def parse(text: str, environ: dict[str, str] | None = None) -> labfile.LabSpec:
    return labfile.parse(text, "lab.yaml", environ or {})


def error_of(text: str) -> str:
    with pytest.raises(LabFileError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("lab.yaml")
    return message


def test_defaults_apply_and_node_values_win() -> None:
    spec = parse(TWO_NODE)
    assert spec.nodes["node1"].memory_mib == 1024
    assert spec.nodes["node2"].memory_mib == 512
    assert spec.nodes["node2"].image == "debian-12"
    assert spec.total_memory_mib == 1536


def test_link_addresses_are_assigned_from_the_subnet_in_endpoint_order() -> None:
    spec = parse(TWO_NODE)
    (first,) = spec.nodes["node1"].interfaces
    (second,) = spec.nodes["node2"].interfaces
    assert first.name == "eth1" and first.address == ipaddress.IPv4Interface("10.10.0.1/24")
    assert second.address == ipaddress.IPv4Interface("10.10.0.2/24")
    assert first.peer_node == "node2" and first.peer_address == second.address


def test_explicit_addresses_are_used_as_given() -> None:
    text = TWO_NODE.replace("subnet: 10.10.0.0/24", "addresses: [192.168.5.9/30, 192.168.5.10/30]")
    spec = parse(text)
    assert str(spec.nodes["node2"].interfaces[0].address) == "192.168.5.10/30"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("node2:eth1]", "node3:eth1]"), "links.0.endpoints: unknown node 'node3'"),
        (("  node2: {}", "  Node_2: {}\n  node2: {}"), "nodes.Node_2: 'Node_2' is not a DNS label"),
        (("memory: 1G", "memory: 100M"), "nodes.node1.memory: 100M is below the 224 MiB"),
        (("memory: 1G", "memroy: 1G"), "nodes.node1.memroy: unknown field"),
        (("subnet: 10.10.0.0/24", "subnet: 10.0.2.0/25"), "overlaps lab's management"),
        (("subnet: 10.10.0.0/24", "subnet: 10.10.0.0/32"), "fewer than two addresses"),
        (("node1:eth1, node2:eth1", "node1:eth0, node2:eth1"), "links.0.endpoints: 'node1:eth0'"),
        (("name: demo", "name: Demo!"), "name: 'Demo!' is not a DNS label"),
    ],
)
def test_errors_name_the_field_and_node(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in TWO_NODE
    assert expected in error_of(TWO_NODE.replace(old, new))


def test_an_endpoint_used_twice_is_refused() -> None:
    text = TWO_NODE + "  - endpoints: [node1:eth1, node2:eth2]\n    subnet: 10.20.0.0/24\n"
    assert "links.1.endpoints: node1:eth1 is already used by links.0" in error_of(text)


def test_overlapping_subnets_are_refused() -> None:
    text = TWO_NODE + "  - endpoints: [node1:eth2, node2:eth2]\n    subnet: 10.10.0.0/16\n"
    assert "links.1.subnet: 10.10.0.0/16 overlaps links.0" in error_of(text)


def test_invalid_yaml_names_the_line() -> None:
    assert "line" in error_of("name: x\nnodes: [\n") and "invalid YAML" in error_of("a: [")


def test_environment_expansion_with_defaults() -> None:
    text = "name: ${LAB_NAME:-fallback}\nnodes:\n  n1: {memory: \"${MEM:-256M}\"}\n"
    assert parse(text).name == "fallback"
    spec = parse(text, {"LAB_NAME": "given", "MEM": "300M"})
    assert spec.name == "given" and spec.nodes["n1"].memory_mib == 300


def test_unset_variable_without_default_is_an_error() -> None:
    assert "${NOPE} is not set" in error_of("name: ${NOPE}\nnodes: {n1: {}}\n")


def test_unknown_lab_reference_lists_known_labs() -> None:
    with pytest.raises(UserInputError, match="unknown lab 'nope'.*single"):
        labfile.locate("nope")


def test_shipped_labs_validate() -> None:
    assert list(labfile.load("single").nodes) == ["node1"]
    two = labfile.load("two-node")
    assert two.links == [("node1:eth1", "node2:eth1")]
