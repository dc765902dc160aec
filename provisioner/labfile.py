"""The lab file: its model, its validation, and the resolved topology it describes."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from labagent.contract import ContainerSpec
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from . import specvalues
from .errors import LabFileError, UserInputError
from .expansion import expand, key_text
from .names import RULE, is_dns_label
from .paths import labs_dir
from .specvalues import parse_publish
from .units import parse_mebibytes

ENDPOINT = re.compile(r"(?P<node>[^:]+):eth(?P<index>[1-9][0-9]?)")
MIN_MEMORY_MIB = 224
MANAGEMENT_SUBNET = ipaddress.IPv4Network("10.0.2.0/24")  # QEMU user-mode networking
MAX_FILE_BYTES = 1 << 20


def dns_label(value: str) -> str:
    if not is_dns_label(value):
        raise ValueError(f"{value!r} is not a DNS label ({RULE})")
    return value


def memory_value(value: str | int) -> str | int:
    return specvalues.guest_memory(value, MIN_MEMORY_MIB)


def _no_bool(value: object) -> object:
    """YAML's yes/no/true are not sizes or counts, though pydantic would take them as 1 and 0."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number or a size")
    return value


Text = Annotated[str, AfterValidator(specvalues.plain_text)]
Size = Annotated[str | int, BeforeValidator(_no_bool)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContainerEntry(Strict):
    """A container as the lab file writes it, checked; spec() is what the host keeps and sends."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    image: Annotated[str, AfterValidator(specvalues.image_reference)]
    command: list[Text] = []
    publish: list[Annotated[str, AfterValidator(specvalues.publish_spec)]] = []
    env: dict[Annotated[str, AfterValidator(specvalues.env_name)], Text] = {}
    memory: Annotated[str, AfterValidator(specvalues.container_memory)] | None = None
    cpus: Annotated[float, BeforeValidator(_no_bool), Field(gt=0, le=1024, allow_inf_nan=False)] | None = None
    pids_limit: Annotated[int, BeforeValidator(_no_bool), Field(ge=-1, le=4194304)] | None = Field(
        default=None, alias="pids-limit"
    )

    def spec(self) -> ContainerSpec:
        return ContainerSpec(
            image=self.image, command=list(self.command), publish=list(self.publish), env=dict(self.env),
            memory=self.memory, cpus=self.cpus, pids_limit=self.pids_limit,
        )


Cpus = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=16)]
Disk = Annotated[Size, AfterValidator(specvalues.disk_size)]  # canonical: a number of MiB and "M"


class Defaults(Strict):
    image: str = "debian-12"
    cpus: Cpus = 1
    memory: Size = "512M"
    disk: Disk | None = None

    _memory = field_validator("memory")(memory_value)


class NodeSpec(Strict):
    image: str | None = None
    cpus: Cpus | None = None
    memory: Size | None = None
    disk: Disk | None = None
    containers: dict[str, ContainerEntry] = {}

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | int | None) -> str | int | None:
        return None if value is None else memory_value(value)

    @field_validator("containers")
    @classmethod
    def _containers(cls, value: dict[str, ContainerEntry]) -> dict[str, ContainerEntry]:
        for name in value:
            specvalues.container_name(name)
        taken: dict[tuple[str, int, str], str] = {}
        for name, spec in value.items():
            for text in spec.publish:
                publication = parse_publish(text)
                key = (publication.host_ip, publication.host_port, publication.proto)
                if key in taken:
                    raise ValueError(f"{name}: {text!r} takes a host port {taken[key]} already publishes")
                taken[key] = name
        return value


class LinkSpec(Strict):
    endpoints: Annotated[list[str], Field(min_length=2, max_length=2)]
    subnet: ipaddress.IPv4Network | None = None
    addresses: Annotated[list[ipaddress.IPv4Interface], Field(min_length=2, max_length=2)] | None = None

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        for endpoint in value:
            if not ENDPOINT.fullmatch(endpoint):
                raise ValueError(f"{endpoint!r} is not NODE:ethN with N from 1 (eth0 is lab's)")
        return value


class LabFileModel(Strict):
    name: Annotated[str, Field(min_length=1)]
    connect: str | None = None
    defaults: Defaults = Defaults()
    nodes: dict[str, NodeSpec | None]
    links: list[LinkSpec] = []

    _name = field_validator("name")(dns_label)


@dataclass(frozen=True)
class Interface:
    """One end of a link, as seen from inside its node."""

    name: str
    address: ipaddress.IPv4Interface
    link: int
    peer_node: str
    peer_address: ipaddress.IPv4Interface


@dataclass(frozen=True)
class Node:
    name: str
    image: str
    cpus: int
    memory_mib: int
    disk: str | None  # "<MiB>M", as specvalues.disk_size makes it
    containers: dict[str, ContainerSpec]
    interfaces: list[Interface] = field(default_factory=list)


@dataclass(frozen=True)
class LabSpec:
    """A validated lab, with defaults applied and link addresses assigned."""

    name: str
    source: str
    connect: str | None
    nodes: dict[str, Node]
    links: list[tuple[str, str]]

    @property
    def total_memory_mib(self) -> int:
        return sum(node.memory_mib for node in self.nodes.values())


def locate(reference: str) -> Path:
    """LAB is a file in labs/ or a path to a lab file; a name in labs/ is a DNS label."""
    path = Path(reference)
    if path.suffix in (".yaml", ".yml") or os.sep in reference:
        if path.is_file():
            return path
        raise UserInputError(f"{reference}: no such lab file")
    if not is_dns_label(reference):
        raise UserInputError(f"unknown lab {reference!r}: give a name in labs/ ({RULE}) or a path to a lab file")
    for suffix in (".yaml", ".yml"):
        candidate = labs_dir() / f"{reference}{suffix}"
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in labs_dir().glob("*.yaml"))) or "none"
    raise UserInputError(f"unknown lab {reference!r} (labs/ has: {known})")


def load(reference: str, environ: dict[str, str] | None = None) -> LabSpec:
    path = locate(reference)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise LabFileError(f"{path}: cannot be read: {error.strerror}") from error
    if len(data) > MAX_FILE_BYTES:
        raise LabFileError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB; this is not a lab file")
    try:
        text = data.decode()
    except UnicodeDecodeError as error:
        raise LabFileError(f"{path}: not UTF-8 text") from error
    return parse(text, str(path), environ)


def parse(text: str, source: str, environ: dict[str, str] | None = None) -> LabSpec:
    """YAML first, then `${VAR}` in the parsed strings, then the model (see expansion.py)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise LabFileError(f"{source}:{where}: invalid YAML: {problem}") from error
    if not isinstance(raw, dict):
        raise LabFileError(f"{source}: a lab file is a mapping with name, nodes and links")
    raw = expand(raw, source, environ)
    try:
        model = LabFileModel.model_validate(raw)
    except ValidationError as error:
        raise LabFileError(f"{source}: {describe(error)}") from error
    return resolve(model, source)


def describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(key_text(part) for part in first["loc"] if part != "[key]")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    more = len(error.errors()) - 1
    return f"{where}: {message}" + (f" (and {more} more)" if more else "")


def resolve(model: LabFileModel, source: str) -> LabSpec:
    def fail(where: str, message: str) -> LabFileError:
        return LabFileError(f"{source}: {where}: {message}")

    nodes: dict[str, Node] = {}
    if not model.nodes:
        raise fail("nodes", "a lab needs at least one node")
    for name, spec in model.nodes.items():
        spec = spec or NodeSpec()
        try:
            dns_label(name)
        except ValueError as error:
            raise fail(f"nodes.{key_text(name)}", str(error)) from None
        memory = spec.memory if spec.memory is not None else model.defaults.memory
        disk = spec.disk or model.defaults.disk
        nodes[name] = Node(
            name=name,
            image=spec.image or model.defaults.image,
            cpus=spec.cpus or model.defaults.cpus,
            memory_mib=parse_mebibytes(memory),
            disk=None if disk is None else str(disk),
            containers={name: entry.spec() for name, entry in spec.containers.items()},
        )

    used_endpoints: dict[str, int] = {}
    subnets: list[tuple[int, ipaddress.IPv4Network]] = []  # (link index, subnet)
    links: list[tuple[str, str]] = []
    for index, link in enumerate(model.links):
        where = f"links.{index}"
        parsed = []
        for endpoint in link.endpoints:
            match = ENDPOINT.fullmatch(endpoint)
            assert match is not None  # checked by the model
            node = match.group("node")
            if node not in nodes:
                raise fail(f"{where}.endpoints", f"unknown node {node!r} in {endpoint!r}")
            if endpoint in used_endpoints:
                other = used_endpoints[endpoint]
                raise fail(f"{where}.endpoints", f"{endpoint} is already used by links.{other}")
            used_endpoints[endpoint] = index
            parsed.append((node, f"eth{match.group('index')}"))
        if parsed[0][0] == parsed[1][0]:
            raise fail(f"{where}.endpoints", "a link joins two different nodes")
        addresses = link_addresses(link, source, where)
        subnet = addresses[0].network
        for other_index, other_subnet in subnets:
            if subnet.overlaps(other_subnet):
                raise fail(f"{where}.subnet", f"{subnet} overlaps links.{other_index} ({other_subnet})")
        if subnet.overlaps(MANAGEMENT_SUBNET):
            raise fail(f"{where}.subnet", f"{subnet} overlaps lab's management {MANAGEMENT_SUBNET}")
        subnets.append((index, subnet))
        for side in (0, 1):
            node, ifname = parsed[side]
            peer_node, _ = parsed[1 - side]
            nodes[node].interfaces.append(
                Interface(ifname, addresses[side], index, peer_node, addresses[1 - side])
            )
        links.append((link.endpoints[0], link.endpoints[1]))
    return LabSpec(model.name, source, model.connect, nodes, links)


def link_addresses(link: LinkSpec, source: str, where: str) -> list[ipaddress.IPv4Interface]:
    def fail(message: str) -> LabFileError:
        return LabFileError(f"{source}: {where}: {message}")

    if link.addresses is not None:
        first, second = link.addresses
        if first.network != second.network:
            raise fail(f"addresses {first} and {second} are not in one subnet")
        if first.ip == second.ip:
            raise fail(f"both ends have the address {first.ip}")
        if link.subnet is not None and first.network != link.subnet:
            raise fail(f"addresses are not in the subnet {link.subnet}")
        return [first, second]
    if link.subnet is None:
        raise fail("a link needs a subnet or two addresses")
    hosts = list(_first_hosts(link.subnet, 2))
    if len(hosts) < 2:
        raise fail(f"subnet {link.subnet} has room for fewer than two addresses")
    return [ipaddress.IPv4Interface(f"{host}/{link.subnet.prefixlen}") for host in hosts]


def _first_hosts(subnet: ipaddress.IPv4Network, count: int) -> list[ipaddress.IPv4Address]:
    found = []
    for host in subnet.hosts():
        found.append(host)
        if len(found) == count:
            break
    return found
