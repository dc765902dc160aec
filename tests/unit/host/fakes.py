"""Fakes for the host's two seams: a hypervisor holding domains in memory, and node shells.

They stand in for provisioner.hypervisor.protocol.Hypervisor and provisioner.remote.seam
(NodeShell, Connector), so the use cases run without a VM, libvirt or SSH.
"""

from __future__ import annotations

import http.server
import json
import re
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from provisioner import engineapi
from provisioner.errors import HostKeyMismatch, HypervisorError, LabError, NodeUnreachable, UnreachableHypervisorError
from provisioner.hypervisor.domain import DomainSpec
from provisioner.remote.seam import CommandResult, Endpoint


@dataclass
class Trigger:
    """When OPERATION is asked of domain NAME (any when None): THEN runs, then ERROR is raised."""

    operation: str
    name: str | None
    error: BaseException | None
    then: Callable[[], None] | None = None


class FakeHypervisor:
    """Domains by name and state; every call recorded; failures injected with fail_on().

    With STORE, the domains live in a JSON file, as a real hypervisor's outlive the
    process that defined them (a `lab create` killed mid-way).
    """

    def __init__(self, store: Path | None = None) -> None:
        self.store = store
        self.domains: dict[str, str] = json.loads(store.read_text()) if store and store.exists() else {}
        self.specs: dict[str, DomainSpec] = {}
        self.calls: list[tuple[str, str]] = []
        self.triggers: list[Trigger] = []
        self.unreachable: str | None = None
        self.opened: list[str] = []
        self.open_connections = 0
        self._lock = threading.Lock()

    # -- the opener (provisioner.hypervisor.protocol.HypervisorOpener) --
    def open(self, uri: str, qemu_marker: Callable[[str], str | None]) -> FakeHypervisor:
        if self.unreachable is not None:
            raise UnreachableHypervisorError(f"cannot open libvirt at {uri}: {self.unreachable}")
        self.opened.append(uri)
        self.open_connections += 1
        return self

    def fail_on(self, operation: str, name: str | None = None, error: BaseException | None = None,
                then: Callable[[], None] | None = None) -> None:
        """Fail OPERATION (on NAME) with ERROR, a HypervisorError by default."""
        self.triggers.append(Trigger(operation, name, error or HypervisorError(f"injected: {operation} failed"), then))

    def on(self, operation: str, then: Callable[[], None], name: str | None = None) -> None:
        """Call THEN (to look at what exists) when OPERATION is asked, and carry on."""
        self.triggers.append(Trigger(operation, name, None, then))

    def _call(self, operation: str, name: str) -> None:
        with self._lock:
            self.calls.append((operation, name))
        for trigger in list(self.triggers):
            if trigger.operation == operation and trigger.name in (None, name):
                if trigger.then is not None:
                    trigger.then()
                if trigger.error is not None:
                    raise trigger.error

    def _save(self) -> None:
        if self.store is not None:
            self.store.write_text(json.dumps(self.domains))

    # -- the Hypervisor protocol --
    def define(self, spec: DomainSpec) -> None:
        self._call("define", spec.name)
        self.domains.setdefault(spec.name, "stopped")
        self.specs[spec.name] = spec
        self._save()

    def start(self, name: str) -> None:
        self._call("start", name)
        if name not in self.domains:
            raise HypervisorError(f"domain {name} is not defined")
        self.domains[name] = "running"
        self._save()

    def stop(self, name: str, grace_seconds: float = 20.0) -> None:
        self._call("stop", name)
        if name in self.domains:
            self.domains[name] = "stopped"
            self._save()

    def remove(self, name: str) -> None:
        self._call("remove", name)
        self.domains.pop(name, None)
        self._save()

    def names(self) -> list[str]:
        return sorted(self.domains)

    def state(self, name: str) -> str:
        self._call("state", name)
        return self.domains.get(name, "missing")

    def close(self) -> None:
        self.open_connections -= 1

    # -- what happens behind lab's back --
    def kill(self, name: str) -> None:
        """The node's QEMU was killed: libvirt still lists it, its process is gone."""
        self.domains[name] = "dead"
        self._save()


Answer = CommandResult | Callable[[str, str], CommandResult]


def _mktemp(node: str, command: str) -> CommandResult:
    prefix = re.search(r"/tmp/([a-z-]+)\.X{10}", command)
    assert prefix, command
    return CommandResult(0, f"/tmp/{prefix.group(1)}.{secrets.token_hex(5)}\n")


def _probe(node: str, command: str) -> CommandResult:
    containers = [{"Names": ["/web"], "Image": "busybox", "State": "running", "Status": "Up 3 seconds"}]
    return CommandResult(0, f"boot-id-of-{node}\n12.5\n{json.dumps(containers if node == 'node1' else [])}\n")


# What a freshly booted guest with its agent answers; tests add answers on top (later ones win).
GUEST = [
    ("mktemp -d ", _mktemp),
    ("until [ -e /run/cloud-init/result.json ]", CommandResult(0, '{"v1": {"errors": []}}\n')),
    ("printf 'GET /_ping ", CommandResult(0, "OK")),
    ("cat /proc/sys/kernel/random/boot_id", _probe),
]


class SocketChannel:
    """A Channel over a connected socket, as an SSH exec channel carries a command's stdio."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, data: bytes) -> int:
        return self.sock.send(data)

    def recv(self, nbytes: int) -> bytes:
        return self.sock.recv(nbytes)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class EngineCall:
    """One request the host sent a node's engine over the request bridge."""

    node: str
    method: str
    path: str  # without the API version
    query: dict[str, str]
    body: Any  # the decoded JSON body, None without one


EngineAnswer = tuple[int, Any] | Callable[[EngineCall], tuple[int, Any]]
CONTAINER_ID = "c0ffee" * 10 + "0123"


class FakeEngine:
    """The engine API behind provisioner.engineapi's bridge: calls recorded, replies scripted.

    A reply is chosen by method and a regular expression over the path (later ones win):
    by default a create answers 201 with an Id and a start 204, as the engine does.
    """

    def __init__(self) -> None:
        self.calls: list[EngineCall] = []
        self.replies: list[tuple[str | None, str, str, EngineAnswer]] = []
        self.reply("POST", r"/containers/create", (201, {"Id": CONTAINER_ID, "Warnings": []}))
        self.reply("POST", r"/containers/[^/]+/start", (204, None))
        self._lock = threading.Lock()

    def reply(self, method: str, path: str, answer: EngineAnswer, node: str | None = None) -> None:
        self.replies.append((node, method, path, answer))

    def calls_for(self, node: str) -> list[EngineCall]:
        return [call for call in self.calls if call.node == node]

    def answer(self, call: EngineCall) -> tuple[int, Any]:
        with self._lock:
            self.calls.append(call)
        for who, method, path, answer in reversed(self.replies):
            if who in (None, call.node) and method == call.method and re.fullmatch(path, call.path):
                return answer(call) if callable(answer) else answer
        return 404, {"message": f"page not found: {call.method} {call.path}"}

    def serve(self, node: str, sock: socket.socket) -> None:
        """Answer the requests arriving on SOCK, in a thread, as the node's socat and engine would."""

        def run() -> None:
            try:
                _EngineHandler(sock, ("fake", 0), _Served(self, node))
            finally:
                sock.close()

        threading.Thread(target=run, daemon=True).start()


@dataclass
class _Served:
    engine: FakeEngine
    node: str


class _EngineHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Served  # type: ignore[assignment]

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        call = EngineCall(self.server.node, self.command, re.sub(r"^/v[0-9.]+", "", url.path),
                          dict(parse_qsl(url.query)), json.loads(raw) if raw else None)
        status, body = self.server.engine.answer(call)
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:  # a 204's reader may be gone as soon as it has the head
            self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeShell:
    """One connection to a node: commands recorded, answers from its FakeNodes' script."""

    def __init__(self, nodes: FakeNodes, endpoint: Endpoint) -> None:
        self.nodes = nodes
        self.endpoint = endpoint
        self.closed = False

    @property
    def node(self) -> str:
        return self.endpoint.node

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        assert not self.closed, f"{self.node}: run on a closed shell"
        self.nodes.record(self.node, command)
        return self.nodes.answer_for(self.node, command)

    def put(self, source: bytes | Path, remote: str) -> None:
        assert not self.closed, f"{self.node}: put on a closed shell"
        self.nodes.record(self.node, f"put {remote}")
        if self.nodes.put_error is not None:
            raise self.nodes.put_error
        self.nodes.files[(self.node, remote)] = source if isinstance(source, bytes) else source.read_bytes()

    def channel(self, command: str) -> SocketChannel:
        """One end of a socket pair. The other end (the command's side) is served by the fake
        engine for an API request's bridge, else kept in FakeNodes.channels."""
        self.nodes.record(self.node, f"channel {command}")
        ours, theirs = socket.socketpair()
        if command == engineapi.REQUEST_BRIDGE:
            self.nodes.engine.serve(self.node, theirs)
        else:
            self.nodes.channels.append((command, theirs))
        return SocketChannel(ours)

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeNodes:
    """The Connector: scripted answers by command prefix, per node or for all; every call recorded.

    `unreachable[node] = n` makes the next n connects to NODE fail (math.inf: all of them).
    """

    answers: list[tuple[str | None, str, Answer]] = field(default_factory=list)
    unreachable: dict[str, float] = field(default_factory=dict)
    mismatched: set[str] = field(default_factory=set)
    put_error: LabError | None = None
    commands: dict[str, list[str]] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    connects: list[str] = field(default_factory=list)
    shells: list[FakeShell] = field(default_factory=list)
    channels: list[tuple[str, socket.socket]] = field(default_factory=list)
    engine: FakeEngine = field(default_factory=FakeEngine)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for prefix, answer in GUEST:
            self.answer(prefix, answer)

    def answer(self, prefix: str, answer: Answer, node: str | None = None) -> None:
        self.answers.append((node, prefix, answer))

    def connect(self, endpoint: Endpoint) -> FakeShell:
        with self._lock:
            self.connects.append(endpoint.node)
            if endpoint.node in self.mismatched:
                raise HostKeyMismatch(f"node {endpoint.node}: the host key is not the pinned one")
            left = self.unreachable.get(endpoint.node, 0)
            if left > 0:
                self.unreachable[endpoint.node] = left - 1
                raise NodeUnreachable(f"node {endpoint.node}: SSH to port {endpoint.port}: refused") from (
                    ConnectionRefusedError(111, "Connection refused"))
            shell = FakeShell(self, endpoint)
            self.shells.append(shell)
            return shell

    def record(self, node: str, command: str) -> None:
        with self._lock:
            self.commands.setdefault(node, []).append(command)

    def answer_for(self, node: str, command: str) -> CommandResult:
        for who, prefix, answer in reversed(self.answers):
            if who in (None, node) and command.startswith(prefix):
                return answer if isinstance(answer, CommandResult) else answer(node, command)
        return CommandResult(0)

    def ran(self, node: str, prefix: str) -> list[str]:
        return [command for command in self.commands.get(node, []) if command.startswith(prefix)]

    def open_shells(self) -> list[FakeShell]:
        return [shell for shell in self.shells if not shell.closed]
