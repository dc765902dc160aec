"""`docker exec` sessions: created, then run once through `crun exec`, kept for their exit code."""

from __future__ import annotations

import os
import selectors
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadParameter, Conflict, NotFound
from ..events import Events
from ..fsutil import new_id, read_json, rmtree, write_json
from ..runtime.crun import Runtime
from . import users
from .logs import STDERR, STDOUT
from .ocispec import merge_env
from .store import ContainerStore

Sink = Callable[[int, bytes], None]


@dataclass
class ExecSession:
    id: str
    container_id: str
    cmd: list[str]
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0


class Execs:
    def __init__(self, store: ContainerStore, runtime: Runtime) -> None:
        self.store = store
        self.runtime = runtime
        self.events = Events()  # the engine's bus replaces this one
        self._sessions: dict[str, ExecSession] = {}
        self._lock = threading.Lock()

    def create(self, ref: str, cmd: list[str], env: list[str], workdir: str = "", user: str = "") -> ExecSession:
        container = self.store.get(ref)
        if not container.running:
            raise Conflict(f"Container {container.id} is not running")
        if container.state.paused:
            raise Conflict(f"Container {container.id} is paused, unpause the container before exec")
        if not cmd or not all(isinstance(a, str) for a in cmd):
            raise BadParameter("No exec command specified")
        if user:
            users.split_spec(user)  # a malformed spec is refused at create, as Docker does
        session = ExecSession(new_id(), container.id, list(cmd), list(env), workdir, user)
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, exec_id: str) -> ExecSession:
        with self._lock:
            session = self._sessions.get(exec_id)
            if session is None:
                matches = [s for s in self._sessions.values() if exec_id and s.id.startswith(exec_id)]
                session = matches[0] if len(matches) == 1 else None
        if session is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return session

    def start(self, exec_id: str, sink: Sink) -> ExecSession:
        """Run the session to completion, passing output to sink (which may fail: client gone)."""
        session = self.get(exec_id)
        with self._lock:
            if session.started:
                raise Conflict(f"Exec {exec_id} has already been started")
            session.started = session.running = True
        container = self.store.get(session.container_id)
        process_file = self.store.bundle(container.id) / f"exec-{session.id}.json"
        try:
            write_json(process_file, self._process(session), durable=False)
            proc = self.runtime.exec(container.id, process_file)
        except Exception:
            session.running, session.exit_code = False, 126
            rmtree(process_file)
            raise
        session.pid = proc.pid
        deliver = _Delivery(sink)
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        sel.register(proc.stdout, selectors.EVENT_READ, STDOUT)
        sel.register(proc.stderr, selectors.EVENT_READ, STDERR)
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                deliver(key.data, data)
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
        session.exit_code = proc.wait()
        session.running = False
        rmtree(process_file)
        return session

    def _process(self, session: ExecSession) -> dict[str, Any]:
        """The container's own process (capabilities, user, rlimits, no_new_privs) running cmd.

        As with Docker, an exec runs as the container's user unless it names one, which is
        resolved in the container's /etc/passwd; its environment is the container's plus its own.
        """
        bundle: Path = self.store.bundle(session.container_id)
        process: dict[str, Any] = dict(read_json(bundle / "config.json")["process"])
        process.update(terminal=False, args=session.cmd, oomScoreAdj=0,
                       env=merge_env(list(process.get("env") or []), session.env))
        if session.workdir:
            process["cwd"] = session.workdir
        if session.user:
            process["user"] = users.resolve(bundle / "rootfs", session.user)
        return process

    def forget(self, exec_id: str) -> None:
        """Drop one finished session (the engine's own probes, which no client asks about)."""
        with self._lock:
            self._sessions.pop(exec_id, None)

    def forget_container(self, cid: str) -> None:
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.container_id == cid]:
                del self._sessions[key]


class _Delivery:
    """Pass output on until the client hangs up, then drop it and let the process finish."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.broken = False

    def __call__(self, stream: int, data: bytes) -> None:
        if self.broken:
            return
        try:
            self.sink(stream, data)
        except OSError:
            self.broken = True
