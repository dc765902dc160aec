"""A tiny SSH server in this process (paramiko's server side), so the real SSH shell is tested.

It accepts one user key and runs each exec request with `sh -c` on this host, carrying
stdin, stdout, stderr and the exit status over the channel, as sshd does; its SFTP
subsystem writes files on this host (what an upload needs: open, write, stat, chmod).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko

from provisioner.keys import generate_ed25519, read_public, write_key_pair, write_known_hosts
from provisioner.remote.seam import Endpoint


class _Server(paramiko.ServerInterface):
    def __init__(self, allowed: paramiko.PKey) -> None:
        self.allowed = allowed

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self.allowed else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=_execute, args=(channel, command.decode()), daemon=True).start()
        return True


class _Sftp(paramiko.SFTPServerInterface):
    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(path))
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno)

    lstat = stat

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno)
        handle = paramiko.SFTPHandle(flags)
        if flags & (os.O_WRONLY | os.O_RDWR):
            handle.writefile = os.fdopen(fd, "wb")
        else:
            handle.readfile = os.fdopen(fd, "rb")
        return handle

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        if attr.st_mode is not None:
            os.chmod(path, attr.st_mode & 0o7777)
        return paramiko.SFTP_OK


def _execute(channel: paramiko.Channel, command: str) -> None:
    process = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdin and process.stdout and process.stderr

    def feed() -> None:
        assert process.stdin
        with contextlib.suppress(OSError):
            while data := channel.recv(65536):
                process.stdin.write(data)
                process.stdin.flush()
            process.stdin.close()

    def drain_stderr() -> None:
        assert process.stderr
        while data := process.stderr.read1(65536):
            channel.sendall_stderr(data)

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=drain_stderr, daemon=True)]
    for thread in threads:
        thread.start()
    while data := process.stdout.read1(65536):
        channel.sendall(data)
    threads[1].join(10)
    channel.send_exit_status(process.wait())
    channel.shutdown_write()
    channel.close()


@dataclass
class Sshd:
    endpoint: Endpoint
    transports: list[paramiko.Transport]


@contextlib.contextmanager
def sshd(directory: Path, node: str = "node1") -> Iterator[Sshd]:
    """A server on a loopback port with a pinned host key; the Endpoint the lab would use."""
    user_key, host_key = directory / "id_ed25519", directory / "host_key"
    write_key_pair(generate_ed25519("lab@test"), user_key)
    write_key_pair(generate_ed25519(f"{node}@test"), host_key)
    allowed = paramiko.Ed25519Key.from_private_key_file(str(user_key))
    server_key = paramiko.Ed25519Key.from_private_key_file(str(host_key))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    write_known_hosts(directory / "known_hosts", {port: read_public(host_key)})
    running = Sshd(Endpoint(node, port, "lab", user_key, directory / "known_hosts"), [])

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(server_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Sftp)
            running.transports.append(transport)
            with contextlib.suppress(paramiko.SSHException, EOFError):
                transport.start_server(server=_Server(allowed))

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield running
    finally:
        listener.close()
        for transport in running.transports:
            transport.close()
