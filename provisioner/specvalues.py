"""The values a lab file hands to the guest engine and to qemu-img, checked on the host.

Each check raises ValueError with a short reason (pydantic puts the file, node and field in
front of it), so a bad value is refused before any VM exists, and no value can reach an
argv as an option or as shell syntax. The forms are the ones Docker and the guest engine
accept; where Docker accepts more than the engine (port ranges, a container port alone),
the engine's narrower form is the rule.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .units import parse_mebibytes

# Docker's (distribution's) reference grammar: name[:tag][@digest], the path in lowercase.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)
MAX_NAME = 255

CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", re.ASCII)  # Docker's rule
MAX_CONTAINER_NAME = 128
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
PUBLISH = re.compile(r"(?:(?P<ip>[^:/]*):)?(?P<host>[0-9]{1,5}):(?P<container>[0-9]{1,5})(?:/(?P<proto>[a-z]+))?",
                     re.ASCII)
PROTOCOLS = ("tcp", "udp")

# Docker's size strings for a container's memory: a plain number is bytes.
BYTES = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[kmgtp]?)(?:i?b)?", re.ASCII | re.IGNORECASE)
BYTE_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MIN_CONTAINER_MEMORY = 6 << 20  # the engine's (and Docker's) floor
MAX_CONTAINER_MEMORY = 1 << 40
MIN_DISK_MIB, MAX_DISK_MIB = 1024, 16 << 20  # 1 GiB to 16 TiB
MAX_MEMORY_MIB = 1 << 20  # 1 TiB of guest memory


def plain_text(value: str) -> str:
    """No NUL: it cannot cross an argv, and would cut a value short on the way."""
    if "\0" in value:
        raise ValueError("holds a NUL character")
    return value


def image_reference(value: str) -> str:
    match = REFERENCE.fullmatch(value) if len(value) <= 2 * MAX_NAME + 256 else None
    if match is None:
        raise ValueError(
            f"{value!r} is not an image reference (NAME[:TAG][@DIGEST], the name in lowercase, "
            "such as busybox or registry.example:5000/team/web:1.2)"
        )
    if len(match.group("name")) > MAX_NAME:
        raise ValueError(f"{value!r}: an image name is at most {MAX_NAME} characters")
    return value


def container_name(value: str) -> str:
    if CONTAINER_NAME.fullmatch(value) is None or len(value) > MAX_CONTAINER_NAME:
        raise ValueError(
            f"{value!r} is not a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, "
            f"at most {MAX_CONTAINER_NAME} characters)"
        )
    return value


def env_name(value: str) -> str:
    if ENV_NAME.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a variable name (letters, digits and '_', not first a digit)")
    return value


@dataclass(frozen=True)
class Publication:
    host_ip: str
    host_port: int
    container_port: int
    proto: str


def parse_publish(value: str) -> Publication:
    """`[IP:]HOST:CONTAINER[/tcp|udp]`, the form `labctl run -p` and the engine take."""
    match = PUBLISH.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a port publication: want [IP:]HOST:CONTAINER[/tcp|udp], such as 8080:80")
    proto = match.group("proto") or "tcp"
    if proto not in PROTOCOLS:
        raise ValueError(f"{value!r}: the protocol is tcp or udp, not {proto!r}")
    host_ip = match.group("ip") or ""
    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise ValueError(f"{value!r}: {host_ip!r} is not an IPv4 address") from None
    ports = []
    for role in ("host", "container"):
        port = int(match.group(role))
        if not 0 < port < 65536:
            raise ValueError(f"{value!r}: the {role} port {port} is not in 1-65535")
        ports.append(port)
    return Publication(host_ip, ports[0], ports[1], proto)


def publish_spec(value: str) -> str:
    parse_publish(value)
    return value


def container_memory(value: str) -> str:
    container_memory_bytes(value)
    return value


def container_memory_bytes(value: str) -> int:
    """A container's memory size in bytes, as the engine reads Docker's size strings."""
    match = BYTES.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a memory size such as 64M or 1G")
    size = float(match.group("number")) * BYTE_FACTORS[match.group("unit").lower()]
    if not MIN_CONTAINER_MEMORY <= size <= MAX_CONTAINER_MEMORY:
        raise ValueError(f"{value!r} is not between 6 MiB and 1 TiB")
    return int(size)


def mebibytes(value: str | int) -> int:
    """A guest size (512M, 1G, or a number of MiB); bool and negative numbers are refused."""
    if isinstance(value, bool) or (isinstance(value, int) and value < 0):
        raise ValueError(f"{value!r} is not a size such as 512M or 1G")
    return parse_mebibytes(value)


def guest_memory(value: str | int, minimum: int) -> str | int:
    mib = mebibytes(value)
    if mib < minimum:
        raise ValueError(f"{value} is below the {minimum} MiB a guest needs to boot")
    if mib > MAX_MEMORY_MIB:
        raise ValueError(f"{value} is above {MAX_MEMORY_MIB // 1024} GiB")
    return value


def disk_size(value: str | int) -> str:
    """A disk size as qemu-img gets it: a whole number of MiB with its unit, nothing else."""
    mib = mebibytes(value)
    if not MIN_DISK_MIB <= mib <= MAX_DISK_MIB:
        raise ValueError(f"{value!r} is not a disk size between 1G and 16T")
    return f"{mib}M"
