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
from dataclasses import dataclass
from pathlib import Path

from labagent.contract import ContainerSpec
from pydantic import BaseModel, Field, ValidationError, field_validator

from .errors import LabBusyError, LabError, LabExistsError, LabNotFoundError
from .names import is_dns_label, lab_name, node_name
from .paths import state_dir
from .processes import ProcessId

LEDGER = "ledger.json"
LOCK = "lock"
VERIFY_RESULTS = "verify.json"


def _label(value: str) -> str:
    """Names in a ledger are checked as on the command line: a ledger is a file, and files get edited."""
    if not is_dns_label(value):
        raise ValueError(f"{value!r} is not a DNS label")
    return value


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
    process: ProcessId | None = None  # the node's QEMU, as it was when it started
    timings: dict[str, float] = {}

    _name = field_validator("name")(_label)


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
    proxies: dict[str, ProcessId] = {}  # node -> its `lab docker-env` proxy

    _name = field_validator("name")(_label)

    @field_validator("nodes", "proxies")
    @classmethod
    def _node_keys(cls, value: dict[str, object]) -> dict[str, object]:
        for key in value:
            _label(key)
        return value


class LabState:
    """The lab's directory under the state dir, its ledger and its lock.

    The name is checked before the path is built: nothing is ever made, read or removed
    from a name that could leave the state dir.
    """

    lock_held = False  # True inside `locked()`: LabSession checks it

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.name = lab_name(name)
        self.dir = (root or state_dir()) / self.name

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

    @property
    def docker_dir(self) -> Path:
        return self.dir / "docker"

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node_name(node)

    @property
    def verify_results(self) -> Path:
        return self.dir / VERIFY_RESULTS

    def proxy_socket(self, node: str) -> Path:
        return self.docker_dir / f"{node_name(node)}.sock"

    def exists(self) -> bool:
        return self.ledger_path.is_file()

    def layout(self, ledger: Ledger) -> Layout:
        """Every path lab makes for this lab: the files its ledger names, and the fixed ones.

        `lab destroy` removes these and nothing else; the paths a ledger holds are taken
        as they are (and checked to lie inside the lab's directory when removed).
        """
        files = [
            self.user_key, self.user_key.with_name(self.user_key.name + ".pub"), self.known_hosts,
            self.verify_results, self.ledger_path.with_suffix(".tmp"),
        ]
        dirs = []
        for node in ledger.nodes.values():
            host_key = Path(node.host_key)
            files += [Path(node.overlay), Path(node.seed), Path(node.seed).with_suffix(".tmp"),
                      Path(node.console_log), host_key, host_key.with_name(host_key.name + ".pub")]
            socket = self.proxy_socket(node.name)
            files += [socket, socket.with_suffix(".log"), socket.with_suffix(".pid")]
            dirs.append(self.node_dir(node.name))
        dirs += [self.dir / "nodes", self.docker_dir]
        return Layout(files=files, trees=[self.libvirt_root], dirs=dirs)

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
        try:
            ledger = Ledger.model_validate_json(self.ledger_path.read_text())
        except (OSError, ValidationError) as error:
            first = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
            raise LabError(f"{self.ledger_path}: not a readable ledger: {first}") from error
        if ledger.name != self.name:
            raise LabError(f"{self.ledger_path}: the ledger is lab {ledger.name!r}'s, not {self.name!r}'s")
        return ledger

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
        descriptor = os.open(self.dir / LOCK, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LabBusyError(
                    f"lab {self.name!r} is busy: another lab command is working on it"
                ) from None
            self.lock_held = True
            try:
                yield
            finally:
                self.lock_held = False
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def lock_path(self) -> Path:
        return self.dir / LOCK


@dataclass(frozen=True)
class Layout:
    """What `lab destroy` may remove: files, whole trees (the embedded libvirt root), empty dirs."""

    files: list[Path]
    trees: list[Path]
    dirs: list[Path]


def all_labs(root: Path | None = None) -> list[LabState]:
    """Directories under the state dir whose name could be a lab's (others are not lab's)."""
    base = root or state_dir()
    if not base.is_dir():
        return []
    return [
        LabState(path.name, base) for path in sorted(base.iterdir())
        if is_dns_label(path.name) and path.is_dir() and not path.is_symlink()
    ]


