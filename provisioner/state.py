"""The per-lab ledger of everything created, and the lock that serialises commands.

Every resource is written to the ledger *before* it is created, so `lab destroy` can find
it after a crash, a Ctrl-C or a SIGKILL at any point.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

from .errors import LabBusyError, LabExistsError, LabNotFoundError
from .labfile import ContainerSpec
from .paths import state_dir

LEDGER = "ledger.json"
LOCK = "lock"


class NodeRecord(BaseModel):
    name: str
    domain: str
    ssh_port: int
    mac: str
    overlay: str
    seed: str
    console_log: str
    host_key: str
    memory_mib: int
    cpus: int
    image: str
    link_ports: dict[str, tuple[int, int]] = {}  # ifname -> (local, remote) UDP ports
    addresses: dict[str, str] = {}  # ifname -> address/prefix
    containers: dict[str, ContainerSpec] = {}
    pid: int | None = None
    timings: dict[str, float] = {}


class Ledger(BaseModel):
    name: str
    uri: str
    source: str
    instance: str
    phase: str = "creating"
    created: float = Field(default_factory=time.time)
    accel: str = ""
    user: str = "lab"
    nodes: dict[str, NodeRecord] = {}
    links: list[tuple[str, str]] = []
    timings: dict[str, float] = {}


class LabState:
    """The lab's directory under the state dir, its ledger and its lock."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.name = name
        self.dir = (root or state_dir()) / name

    @property
    def ledger_path(self) -> Path:
        return self.dir / LEDGER

    @property
    def user_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def libvirt_root(self) -> Path:
        return self.dir / "libvirt"

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    def exists(self) -> bool:
        return self.ledger_path.is_file()

    def claim(self) -> None:
        """Create the lab's directory; it must not exist yet."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.dir.mkdir(mode=0o700)
        except FileExistsError:
            raise LabExistsError(
                f"lab {self.name!r} already exists; `lab destroy {self.name}` first"
            ) from None

    def load(self) -> Ledger:
        if not self.exists():
            raise LabNotFoundError(f"no lab named {self.name!r} (see `lab list`)")
        return Ledger.model_validate_json(self.ledger_path.read_text())

    def save(self, ledger: Ledger) -> None:
        """Write to a temporary file and rename, so a crash never leaves half a ledger."""
        temporary = self.ledger_path.with_suffix(".tmp")
        temporary.write_text(ledger.model_dump_json(indent=2))
        with temporary.open() as handle:
            os.fsync(handle.fileno())
        temporary.rename(self.ledger_path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lab's lock; a second command on the same lab fails at once."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / LOCK).open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabBusyError(
                    f"lab {self.name!r} is busy: another lab command is working on it"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def all_labs(root: Path | None = None) -> list[LabState]:
    base = root or state_dir()
    if not base.is_dir():
        return []
    return [LabState(path.name, base) for path in sorted(base.iterdir()) if path.is_dir()]


