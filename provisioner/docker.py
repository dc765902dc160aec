"""The host's docker CLI and docker-py against a node's engine, over the lab's pinned SSH.

A local unix socket (mode 0600 in a 0700 directory; no TCP port anywhere) accepts docker
clients; each connection becomes one SSH channel that runs a stdio bridge to the engine's
root-only socket in the guest. The SSH connection rejects any host key but the pinned one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .engineapi import bridge_command
from .errors import DockerProxyError, LabBusyError, MissingToolError
from .lab.access import node_record
from .lab.session import endpoint_of, reaching
from .processes import ProcessId, identify, is_running, terminate
from .remote.seam import Channel, Endpoint, NodeShell
from .seams import Seams, real_seams
from .state import LabState

# socat's -t: how long the answer keeps flowing after the client's end-of-file. The docker CLI
# half-closes a hijacked attach/exec stream at once; the bridge still ends when the engine does.
BRIDGE_COMMAND = bridge_command(86400)
CHUNK = 64 * 1024
# After the engine's end-of-file the client gets LINGER seconds to read it and close before
# the proxy closes: closing a socket with unread input (a request sent meanwhile) resets it.
LINGER = 2.0
# SSH connections the proxy opens to one node when every open one refuses a channel (sshd's
# MaxSessions; a connection that dropped).
MAX_CONNECTIONS = 8


def _send_all(send: Callable[[bytes], int], data: bytes) -> None:
    while data:
        sent = send(data)
        if sent <= 0:
            raise OSError("channel closed")
        data = data[sent:]


def bad_gateway(message: str) -> bytes:
    """A Docker-style JSON error, so a client sees why (not a reset) when the node cannot answer."""
    body = json.dumps({"message": message}).encode() + b"\n"
    head = ("HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def _drain(local: socket.socket, seconds: float) -> None:
    """Read and drop the client's input until it closes or `seconds` pass, so our close is no reset."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        while (left := deadline - time.monotonic()) > 0:
            local.settimeout(left)
            if not local.recv(CHUNK):
                return


def refuse(local: socket.socket, message: str) -> None:
    """Answer 502 with MESSAGE, let the client read it, close."""
    with contextlib.suppress(OSError):
        local.sendall(bad_gateway(message))
        local.shutdown(socket.SHUT_WR)
        _drain(local, LINGER)
    local.close()


def bridge(local: socket.socket, channel: Channel, where: str = "the node") -> None:
    """Copy both ways until both ends are done; a half-close travels as a half-close.

    Returns when the engine side has finished answering (or either side failed), and
    closes both, so a docker client killed mid-stream ends its remote bridge too. A bridge
    that ends before the engine said anything is a 502 to the client, never a bare close.
    """

    def upstream() -> None:
        try:
            while data := local.recv(CHUNK):
                _send_all(channel.send, data)
            channel.shutdown_write()  # the client half-closed: tell the engine, keep reading
        except Exception:  # OSError from the client; EOFError, SSHException from a dropped connection
            with contextlib.suppress(Exception):
                channel.close()

    pump = threading.Thread(target=upstream, daemon=True)
    pump.start()
    answered, failure = False, ""
    try:
        while data := channel.recv(CHUNK):
            answered = True
            local.sendall(data)
    except Exception as error:  # the client went away, or the SSH connection dropped
        failure = f": {type(error).__name__}: {error}"
    try:
        if not answered:
            local.sendall(bad_gateway(f"no answer from the engine on {where}: the SSH bridge to its socket "
                                      f"ended{failure or ' (is the engine running? see lab status)'}"))
        local.shutdown(socket.SHUT_WR)
        pump.join(LINGER)  # the client reads the end and closes; its input is read meanwhile
    except OSError:
        pass
    finally:
        with contextlib.suppress(Exception):
            channel.close()
        with contextlib.suppress(OSError):
            local.shutdown(socket.SHUT_RDWR)
        local.close()
        pump.join(timeout=5)


class SocketProxy:
    """A unix socket whose every connection is bridged to a fresh channel from open_channel()."""

    def __init__(self, path: Path, open_channel: Callable[[], Channel]) -> None:
        self.path = path
        self.open_channel = open_channel
        self.last_activity = 0.0
        self.active = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.listener.bind(str(path))
        finally:
            os.umask(old)
        self.listener.listen(16)
        self.listener.settimeout(1.0)

    def serve(self, keep_going: Callable[[], bool] = lambda: True) -> None:
        """Accept until close() or until keep_going() turns false (checked every second)."""
        self.last_activity = time.monotonic()
        while not self._closed.is_set() and keep_going():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.last_activity = time.monotonic()
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with self._lock:
            self.active += 1
        try:
            channel = self.open_channel()
        except Exception as error:
            refuse(conn, f"the docker proxy could not open an SSH channel to the node: {error}")
        else:
            bridge(conn, channel)
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def node_endpoint(lab: str, node: str) -> Endpoint:
    """The node's loopback SSH port with the lab's key and pinned known_hosts."""
    state = LabState(lab)
    ledger = state.load()
    return endpoint_of(state, ledger, node_record(ledger, node))


class ChannelOpener:
    """Channels running the engine bridge, over the node's connections.

    Each docker client connection is one SSH session; sshd caps the sessions of one
    connection (MaxSessions), and docker-py pools ten connections per client. When every
    connection refuses a channel, one more is opened with `connect` (up to `most`); the
    connections opened here are closed by close(), the first one belongs to the caller.
    """

    def __init__(self, first: NodeShell, connect: Callable[[], NodeShell] | None = None,
                 most: int = MAX_CONNECTIONS, command: str = BRIDGE_COMMAND) -> None:
        self.command = command
        self._shells = [first]
        self._own: list[NodeShell] = []
        self._connect = connect
        self._most = most
        self._lock = threading.Lock()

    def _try(self, shells: list[NodeShell]) -> tuple[Channel | None, Exception | None]:
        last: Exception | None = None
        for shell in reversed(shells):  # the newest first: the older ones are the full ones
            try:
                return shell.channel(self.command), None
            except Exception as error:
                last = error
        return None, last

    def __call__(self) -> Channel:
        with self._lock:
            shells = list(self._shells)
        channel, error = self._try(shells)
        if channel is not None:
            return channel
        with self._lock:  # one connect at a time: others may find room on it
            if self._shells != shells:
                channel, error = self._try(self._shells[len(shells):])
                if channel is not None:
                    return channel
            if self._connect is None or len(self._shells) >= self._most:
                assert error is not None
                raise error
            shell = self._connect()
            self._shells.append(shell)
            self._own.append(shell)
        return shell.channel(self.command)

    def close(self) -> None:
        with self._lock:
            own, self._own = self._own, []
            self._shells = self._shells[:1]
        for shell in own:
            with contextlib.suppress(Exception):
                shell.close()


def channel_opener(shell: NodeShell, connect: Callable[[], NodeShell] | None = None) -> ChannelOpener:
    """Each call opens a channel running the engine bridge, over the node's connections."""
    return ChannelOpener(shell, connect)


@contextlib.contextmanager
def proxied(shell: NodeShell, connect: Callable[[], NodeShell] | None = None) -> Iterator[str]:
    """A private unix socket forwarding to the node's engine, for the duration of the block."""
    workdir = Path(tempfile.mkdtemp(prefix="lab-docker-"))  # 0700 by mkdtemp
    opener = channel_opener(shell, connect)
    proxy = SocketProxy(workdir / "docker.sock", opener)
    threading.Thread(target=proxy.serve, daemon=True).start()
    try:
        yield f"unix://{proxy.path}"
    finally:
        proxy.close()
        opener.close()
        with contextlib.suppress(OSError):
            workdir.rmdir()


def docker_binary() -> str:
    found = shutil.which("docker")
    if not found:
        raise MissingToolError("the docker CLI is not installed on this host (only the client is needed)")
    return found


def run_docker(lab: str, node: str, args: list[str], seams: Seams) -> int:
    """`lab docker LAB NODE -- ARGS`: the host's docker CLI, through the proxy; its exit code."""
    with reaching(lab, seams) as nodes:
        record = node_record(nodes.ledger, node)
        binary = docker_binary()
        with proxied(nodes.shell(record), lambda: nodes.seams.connect(nodes.endpoint(record))) as host:
            env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY")}
            env["DOCKER_HOST"] = host
            return subprocess.call([binary, *args], env=env)


# `lab docker-env`: a proxy that outlives the command, for eval and for docker-py ------------
IDLE_EXIT = 3600.0  # a background proxy with no client for this long goes away


def socket_path(lab: str, node: str) -> Path:
    """Inside the lab's own 0700 state dir; in a private /tmp dir when that path is too long."""
    path = LabState(lab).proxy_socket(node)  # both names checked before the path is built
    if len(str(path)) < 100:
        return path
    private = Path(tempfile.gettempdir()) / f"lab-docker-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    st = private.lstat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not private.is_dir() or private.is_symlink():
        raise DockerProxyError(f"{private} is not a private directory of this user; remove it")
    return private / f"{lab}-{node}.sock"


def recorded_proxy(lab: str, node: str) -> ProcessId | None:
    """The proxy the lab's ledger records for NODE, if that very process still runs."""
    state = LabState(lab)
    if not state.exists():
        return None
    process = state.load().proxies.get(node)
    return process if process is not None and is_running(process) else None


def _answers(sock: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2)
        probe.connect(str(sock))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def running_proxy(lab: str, node: str) -> int | None:
    """The PID of NODE's recorded proxy, if it runs and its socket answers."""
    process = recorded_proxy(lab, node)
    return process.pid if process is not None and _answers(socket_path(lab, node)) else None


def _record_proxy(state: LabState, node: str, process: ProcessId | None) -> None:
    """Called with the lab's lock held."""
    ledger = state.load()
    if process is None:
        ledger.proxies.pop(node, None)
    else:
        ledger.proxies[node] = process
    state.save(ledger)


def serve_background(lab: str, node: str, seams: Seams) -> None:
    """The body of the detached proxy: serve until idle, the lab is gone, or SSH drops."""
    sock = socket_path(lab, node)
    with reaching(lab, seams) as nodes:
        record = node_record(nodes.ledger, node)
        opener = channel_opener(nodes.shell(record), lambda: nodes.seams.connect(nodes.endpoint(record)))
        proxy = SocketProxy(sock, opener)

        def keep_going() -> bool:
            idle = time.monotonic() - proxy.last_activity
            return nodes.state.exists() and (proxy.active > 0 or idle < IDLE_EXIT)

        try:
            proxy.serve(keep_going)
        finally:
            proxy.close()
            opener.close()


def ensure_background(lab: str, node: str, timeout: float = 30.0) -> tuple[Path, int]:
    """Start the detached proxy unless one is already serving; its socket and pid.

    The proxy's PID and start time go into the lab's ledger, under the lab's lock, as soon
    as it is started: `lab destroy` and `--unset` end it by that record only.
    """
    node_endpoint(lab, node)  # fail here, in the foreground, on a bad lab or node name
    sock = socket_path(lab, node)
    pid = running_proxy(lab, node)
    if pid:
        return sock, pid
    stop_background(lab, node)  # a recorded proxy that no longer answers
    log = sock.with_suffix(".log")
    sock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    state = LabState(lab)
    with state.locked():
        with open(log, "wb") as out:
            child = subprocess.Popen([sys.executable, "-m", "provisioner.docker", lab, node],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     start_new_session=True, cwd="/")
        _record_proxy(state, node, identify(child.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        if _answers(sock):
            return sock, child.pid
        time.sleep(0.1)
    if child.poll() is None:
        child.kill()  # our own child, by its handle
        child.wait()
        problem = f"did not come up in {timeout:.0f} s"
    else:
        detail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        problem = f"failed: {detail[0]}"
    with contextlib.suppress(LabBusyError), state.locked():
        _record_proxy(state, node, None)
    raise DockerProxyError(f"the docker proxy for {lab}/{node} {problem}")


def stop_background(lab: str, node: str) -> bool:
    """End NODE's recorded proxy, by the ledger's PID and only if it is still that process."""
    process = recorded_proxy(lab, node)
    stopped = process is not None and terminate(process)
    state = LabState(lab)
    if state.exists() and node in state.load().proxies:
        with contextlib.suppress(LabBusyError), state.locked():
            _record_proxy(state, node, None)
    return stopped


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    serve_background(sys.argv[1], sys.argv[2], real_seams())
