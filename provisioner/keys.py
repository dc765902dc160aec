"""SSH keys made on the host: one user key per lab, one pinned host key per node."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str
    public_openssh: str


def generate_ed25519(comment: str) -> KeyPair:
    """paramiko cannot generate ed25519 keys; cryptography can."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return KeyPair(private, f"{public} {comment}")


def write_key_pair(pair: KeyPair, private_path: Path) -> None:
    private_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(pair.private_openssh)
    private_path.with_name(private_path.name + ".pub").write_text(pair.public_openssh + "\n")


def read_public(private_path: Path) -> str:
    return private_path.with_name(private_path.name + ".pub").read_text().strip()


def known_hosts_line(port: int, public_openssh: str) -> str:
    key_type, key_body = public_openssh.split()[:2]
    return f"[127.0.0.1]:{port} {key_type} {key_body}"


def write_known_hosts(path: Path, entries: dict[int, str]) -> None:
    """Pin each node's host key under its forwarded port."""
    lines = [known_hosts_line(port, public) for port, public in sorted(entries.items())]
    path.write_text("".join(line + "\n" for line in lines))
