"""`docker exec` sessions: created, claimed once, run through `crun exec`, kept for inspect.

A session's process is the container's own (capabilities, user, rlimits, no_new_privs) with
the exec's command, environment, user and working directory; with Tty it gets a pty made by
crun in the container (runtime/console.py). Sessions are kept, as Docker keeps them, until
their container is removed, up to MAX_SESSIONS: past that the oldest not running go first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadParameter, Conflict, EngineError, NotFound
from ..events import Events
from ..fsutil import new_id, read_json, write_json
from ..runtime.console import ConsoleSocket, Pty
from ..runtime.crun import ExecFiles, Runtime, last_line
from . import detachkeys, users
from .execio import Delivery, ExecIO, Input, Sink
from .logs import STDOUT
from .ocispec import merge_env
from .store import ContainerStore

MAX_SESSIONS = 1024
MAX_ARGS = 4096  # arguments and environment entries, each
START_FAILED = 126  # Docker's exit code for an exec that could not be started
_EMIT_PARAMETERS = ("type_", "action", "actor_id")  # Events.emit's own names: no attribute may take them


@dataclass
class ExecConfig:
    """What `POST /containers/{id}/exec` asked for (Docker's ExecConfig)."""

    cmd: list[str]
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    detach_keys: str = ""  # as given; "" is Docker's ctrl-p,ctrl-q
    console_size: tuple[int, int] | None = None  # (height, width)


@dataclass
class ExecSession:
    id: str
    container_id: str
    config: ExecConfig
    files: ExecFiles
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    prepared: bool = False  # its process file is written
    pty: Pty = field(default_factory=Pty)

    @property
    def cmd(self) -> list[str]:
        return self.config.cmd

    @property
    def keys(self) -> bytes:
        return detachkeys.parse(self.config.detach_keys) if self.config.detach_keys else detachkeys.DEFAULT

    def current_pid(self) -> int:
        """The process's pid, which crun writes to the pid file once it is there."""
        if not self.pid and self.running:
            self.pid = self.files.read_pid()
        return self.pid


def validate(config: ExecConfig) -> None:
    """Refuse, before anything runs, what crun or the kernel would refuse later."""
    if not config.cmd or not all(isinstance(a, str) for a in config.cmd):
        raise BadParameter("No exec command specified")
    if not all(isinstance(e, str) for e in config.env):
        raise BadParameter("Env must be a list of strings")
    if len(config.cmd) > MAX_ARGS or len(config.env) > MAX_ARGS:
        raise BadParameter(f"Cmd and Env take at most {MAX_ARGS} entries each")
    if any("\x00" in text for text in [*config.cmd, *config.env, config.workdir, config.user]):
        raise BadParameter("Cmd, Env, WorkingDir and User cannot hold a NUL byte")
    if config.workdir and not config.workdir.startswith("/"):
        raise BadParameter(f"WorkingDir {config.workdir[:64]!r} is invalid: it needs to be an absolute path")
    if config.user:
        users.split_spec(config.user)  # a malformed spec is refused at create, as Docker does
    if config.detach_keys:
        detachkeys.parse(config.detach_keys)


class Execs:
    def __init__(self, store: ContainerStore, runtime: Runtime) -> None:
        self.store = store
        self.runtime = runtime
        self.events = Events()  # the engine's bus replaces this one
        self._sessions: dict[str, ExecSession] = {}
        self._lock = threading.Lock()

    # create, find -------------------------------------------------------------------------
    def create(self, ref: str, config: ExecConfig | list[str], env: list[str] | None = None,
               workdir: str = "", user: str = "") -> ExecSession:
        """A session in a running container (a bare command, env, workdir and user will do)."""
        if not isinstance(config, ExecConfig):
            config = ExecConfig(list(config), list(env or []), workdir, user)
        container = self.store.get(ref)
        _check_runnable(container.id, container.running, container.state.paused)
        validate(config)
        eid = new_id()
        session = ExecSession(eid, container.id, config, ExecFiles.of(self.store.bundle(container.id), eid),
                              pty=Pty(config.console_size))
        with self._lock:
            self._make_room()
            self._sessions[session.id] = session
        self._emit(session, f"exec_create: {config.cmd[0]} {' '.join(config.cmd[1:])}")
        return session

    def _make_room(self) -> None:
        """Drop the oldest sessions not running while there are MAX_SESSIONS (lock held)."""
        while len(self._sessions) >= MAX_SESSIONS:
            idle = next((k for k, s in self._sessions.items() if not s.running), None)
            if idle is None:
                raise EngineError(f"{MAX_SESSIONS} exec sessions are running, the engine's limit", 503)
            del self._sessions[idle]

    def get(self, exec_id: str) -> ExecSession:
        with self._lock:
            session = self._sessions.get(exec_id)
            if session is None:
                matches = [s for s in self._sessions.values() if exec_id and s.id.startswith(exec_id)]
                session = matches[0] if len(matches) == 1 else None
        if session is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return session

    # start --------------------------------------------------------------------------------
    def claim(self, exec_id: str) -> ExecSession:
        """Check that the session may start, and mark it started; refusals are the client's.

        The API calls this before it hijacks the connection, so that a refusal is still an
        HTTP answer. A session is claimed once: a second start is a conflict, as in Docker.
        """
        session = self.get(exec_id)
        with self._lock:
            if session.exit_code is not None:
                raise Conflict(f"Error: Exec command {session.id} has already run")
            if session.started:
                raise Conflict(f"Error: Exec command {session.id} is already running")
            container = self.store.get(session.container_id)
            _check_runnable(container.id, container.running, container.state.paused)
            session.started = session.running = True
        return session

    def prepare(self, session: ExecSession) -> None:
        """Write a claimed session's process file (its user resolved); a failure ends it with 126."""
        if session.prepared:
            return
        try:
            write_json(session.files.process, self._process(session), durable=False)
        except Exception:
            self._finish(session, START_FAILED)
            raise
        session.prepared = True

    def run(self, session: ExecSession, sink: Sink, stdin: Input | None = None) -> ExecSession:
        """Run a claimed session to its end, output to sink (which may fail: client gone).

        stdin, when the session attached it, is the client's input. A session that cannot
        start (a user its container does not know, a command crun cannot find) ends with 126
        and the reason on the stream, as in Docker.
        """
        try:
            self.prepare(session)
        except EngineError as exc:
            _tell(sink, f"{exc.message}\r\n".encode())
            return session
        config = session.config
        console: ConsoleSocket | None = None
        try:
            console = ConsoleSocket() if config.tty else None
            proc = self.runtime.exec(session.container_id, session.files, stdin=config.stdin and stdin is not None,
                                     console=console.path if console else None)
        except Exception:
            if console is not None:
                console.close()
            self._finish(session, START_FAILED)
            raise
        self._emit(session, f"exec_start: {config.cmd[0]} {' '.join(config.cmd[1:])}")
        pump = ExecIO(proc, Delivery(sink, config.stdout, config.stderr), stdin if config.stdin else None,
                      console, session.pty, session.keys, lambda: self._emit(session, "exec_detach"))
        try:
            pump.run()
        finally:
            if console is not None:
                console.close()
            code = proc.wait()
            session.pid = session.files.read_pid() or session.pid
            failure = last_line(session.files.log) if code != 0 else ""
            if failure:
                code = START_FAILED
                if not pump.deliver.broken:
                    _tell(sink, f"OCI runtime exec failed: {failure}\r\n".encode())
            self._finish(session, code)
        return session

    def start(self, exec_id: str, sink: Sink) -> ExecSession:
        """Claim and run a session without input (for callers inside the engine)."""
        return self.run(self.claim(exec_id), sink)

    def resize(self, exec_id: str, height: int, width: int) -> None:
        """The TTY's window size, now or as soon as the pty is there; nothing to size without one."""
        session = self.get(exec_id)
        container = self.store.get(session.container_id)
        _check_runnable(container.id, container.running, container.state.paused)
        if session.config.tty and session.exit_code is None:
            session.pty.resize(height, width)

    def _finish(self, session: ExecSession, code: int) -> None:
        session.files.remove()
        with self._lock:
            session.exit_code, session.running = code, False
        self._emit(session, "exec_die", exitCode=str(code))

    def _process(self, session: ExecSession) -> dict[str, Any]:
        """The container's own process (capabilities, user, rlimits, no_new_privs) running cmd.

        As with Docker, an exec runs as the container's user unless it names one, which is
        resolved in the container's /etc/passwd; its environment is the container's plus its
        own, with TERM=xterm under a TTY unless the container sets TERM. A size known by now
        (ConsoleSize at create or start, a resize before the start) is the pty's first.
        """
        config = session.config
        bundle: Path = self.store.bundle(session.container_id)
        process: dict[str, Any] = dict(read_json(bundle / "config.json")["process"])
        env = list(process.get("env") or [])
        if config.tty and not any(item.partition("=")[0] == "TERM" for item in env):
            env.append("TERM=xterm")
        process.update(terminal=config.tty, args=config.cmd, oomScoreAdj=0, env=merge_env(env, config.env))
        process.pop("consoleSize", None)
        if config.tty and session.pty.size:  # crun sizes the pty before the process starts
            process["consoleSize"] = {"height": session.pty.size[0], "width": session.pty.size[1]}
        if config.workdir:
            process["cwd"] = config.workdir
        if config.user:
            process["user"] = users.resolve(bundle / "rootfs", config.user)
        return process

    def _emit(self, session: ExecSession, action: str, **extra: str) -> None:
        """A container event, with the container's labels, image and name, as Docker sends."""
        attributes: dict[str, str] = {"execID": session.id}
        try:
            container = self.store.get(session.container_id)
        except NotFound:
            pass
        else:
            attributes.update(container.spec.labels)
            attributes.update(image=container.spec.image, name=container.name)
        attributes.update(extra)
        for name in _EMIT_PARAMETERS:
            attributes.pop(name, None)
        self.events.emit("container", action, session.container_id, **attributes)
    def forget(self, exec_id: str) -> None:
        """Drop one finished session (the engine's own probes, which no client asks about)."""
        with self._lock:
            self._sessions.pop(exec_id, None)

    def forget_container(self, cid: str) -> None:
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.container_id == cid]:
                del self._sessions[key]


def _check_runnable(cid: str, running: bool, paused: bool) -> None:
    if not running:
        raise Conflict(f"Container {cid} is not running")
    if paused:
        raise Conflict(f"Container {cid} is paused, unpause the container before exec")


def _tell(sink: Sink, message: bytes) -> None:
    try:
        sink(STDOUT, message)
    except OSError:
        pass
