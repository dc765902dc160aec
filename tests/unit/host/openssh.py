"""OpenSSH's own sshd on a loopback port, for what only OpenSSH does (sshd.py is paramiko's).

When sshd sends a channel's end-of-file (only once the command's stdout and stderr are closed
by every process holding them) and how many sessions one connection may open (MaxSessions)
decide whether the docker proxy's bridge ends and whether its channels are refused. Root only
(it logs in as root, as the guest's sudo makes the bridge), with sshd, socat and sudo installed;
the tests skip otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from provisioner.keys import generate_ed25519, read_public, write_key_pair, write_known_hosts
from provisioner.remote.seam import Endpoint

SSHD = "/usr/sbin/sshd"


def missing() -> str | None:
    """Why a real sshd cannot run here, or None."""
    if os.getuid() != 0:
        return "a real sshd logs in as root here"
    for tool in (SSHD, "socat", "sudo"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


@contextlib.contextmanager
def openssh(directory: Path, max_sessions: int = 10, node: str = "node1") -> Iterator[Endpoint]:
    """sshd in the foreground with its own config and keys; the Endpoint a lab would use."""
    directory.mkdir(parents=True, exist_ok=True)
    user_key, host_key = directory / "id_ed25519", directory / "host_key"
    write_key_pair(generate_ed25519("lab@test"), user_key)
    write_key_pair(generate_ed25519(f"{node}@test"), host_key)
    (directory / "authorized_keys").write_text(read_public(user_key) + "\n")
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}", f"HostKey {host_key}", f"PidFile {directory / 'sshd.pid'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}", "StrictModes no", "UsePAM no",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no", f"MaxSessions {max_sessions}",
    ]) + "\n")
    write_known_hosts(directory / "known_hosts", {port: read_public(host_key)})
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    with open(directory / "sshd.log", "wb") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(directory / 'sshd.log').read_text()}")
            time.sleep(0.05)
        yield Endpoint(node, port, "root", user_key, directory / "known_hosts")
    finally:
        proc.terminate()  # our own child, by its handle
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
