"""Deploying the guest agent (the container engine) into a node, through its NodeShell."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import py_compile
import shlex
import sys
import tarfile
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from labagent.contract import AGENT_DIR, SOCKET, SOCKET_ENV, STATE_ROOT, UNIT

from .errors import LabError, RemoteError
from .paths import guest_agent_dir
from .remote.seam import NodeShell
from .remote.tempdir import remote_tempdir
from .templating import render

# Debian 12's python3. When the host's Python matches, the archive carries compiled
# bytecode: compiling the agent in the guest costs about a second of TCG time at boot.
GUEST_PYTHON_CACHE_TAG = "cpython-311"


def api_get_command(path: str) -> str:
    """A shell line that GETs an engine API path and prints only the response body."""
    return (
        f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | sudo -n socat -t 5 - UNIX-CONNECT:{SOCKET} "
        "2>/dev/null | sed '1,/^\\r$/d'"
    )


PING = api_get_command("/_ping")


# What a node needs of guest-agent/: the engine's package (its CLI wrappers, labctl and the
# docker shim, are templates). The agent's README, its package metadata and what local tools
# leave there are not deployed.
ARCHIVE_FOLDERS = ("labagent",)


def archive_sources(source: Path) -> list[Path]:
    """The files of ARCHIVE_FOLDERS under SOURCE, in a stable order, without caches."""
    found = (path for folder in ARCHIVE_FOLDERS for path in (source / folder).rglob("*"))
    return sorted(
        path for path in found
        if path.is_file() and not any(
            part == "__pycache__" or part.startswith(".") for part in path.relative_to(source).parts
        )
    )


@lru_cache(maxsize=1)
def agent_archive() -> tuple[bytes, str]:
    """The guest agent as a tar.gz, with a version derived from its content.

    The same files give the same version, from a checkout or from an installed wheel.
    """
    buffer = io.BytesIO()
    digest = hashlib.sha256()
    source = guest_agent_dir()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in archive_sources(source):
            name = str(path.relative_to(source))
            data = path.read_bytes()
            digest.update(name.encode() + b"\0" + data)
            _add(archive, name, data)
            if path.suffix == ".py" and sys.implementation.cache_tag == GUEST_PYTHON_CACHE_TAG:
                _add(archive, str(Path(importlib.util.cache_from_source(name))), _bytecode(path, name))
    return buffer.getvalue(), digest.hexdigest()[:16]


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    archive.addfile(info, io.BytesIO(data))


def _bytecode(source: Path, name: str) -> bytes:
    """An unchecked-hash .pyc: valid whatever the files' mtimes, never re-validated.

    Each agent version is unpacked into a fresh directory, so the bytecode cannot go stale.
    """
    with tempfile.TemporaryDirectory() as scratch:
        compiled = Path(scratch) / "module.pyc"
        py_compile.compile(
            str(source), cfile=str(compiled), dfile=f"{AGENT_DIR}/{name}", doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        return compiled.read_bytes()


UPLOADS = ("agent.tar.gz", "lab-agent.service", "labctl", "docker", "lab-agent-veths.rules", "install.sh")
# What the templates name: where the agent lives and what it serves (labagent.contract).
CONTRACT = {"agent_dir": AGENT_DIR, "socket": SOCKET, "socket_env": SOCKET_ENV, "state_root": STATE_ROOT,
            "unit": UNIT}


def upload(shell: NodeShell) -> str:
    """Send the agent, its unit and its install script to a fresh private directory; its path.

    The directory comes from the node's `mktemp -d` (0700, a name nobody could guess or
    make in advance): the install step runs these files as root.
    """
    archive, version = agent_archive()
    context = dict(CONTRACT)
    workdir = remote_tempdir(shell, "lab-agent")
    paths = {name: f"{workdir}/{name}" for name in UPLOADS}
    script = render(
        "agent-install.sh.j2", version=version, workdir=workdir, archive=paths["agent.tar.gz"],
        unit_upload=paths["lab-agent.service"], labctl_upload=paths["labctl"], docker_upload=paths["docker"],
        rules_upload=paths["lab-agent-veths.rules"], **context,
    )
    contents = {
        "agent.tar.gz": archive,
        "lab-agent.service": render("lab-agent.service.j2", **context).encode(),
        "labctl": render("labctl.sh.j2", **context).encode(),
        "docker": render("docker.sh.j2", **context).encode(),
        "lab-agent-veths.rules": render("lab-agent-veths.rules").encode(),
        "install.sh": script.encode(),
    }
    try:
        for name in UPLOADS:
            shell.put(contents[name], paths[name])
    except BaseException:
        with contextlib.suppress(LabError):  # the upload's own error is the one to report
            shell.run(f"rm -rf {shlex.quote(workdir)}")
        raise
    return workdir


def install_command(workdir: str) -> str:
    """Run the uploaded script as root; the directory goes whatever the script's outcome."""
    quoted = shlex.quote(workdir)
    return f"sudo -n sh {shlex.quote(workdir + '/install.sh')}; rc=$?; rm -rf {quoted}; exit $rc"


def install(shell: NodeShell, workdir: str) -> None:
    shell.run(install_command(workdir)).check(f"node {shell.node}: installing the guest agent failed")


def wait_until_answering(shell: NodeShell, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if shell.run(PING).stdout.strip().endswith("OK"):
            return
        time.sleep(0.25)
    journal = shell.run(f"sudo -n journalctl -u {UNIT} --no-pager -n 5 -o cat").stdout.strip().replace("\n", " | ")
    raise RemoteError(
        f"node {shell.node}: the guest agent did not answer on {SOCKET} in {timeout:.0f} s: {journal}"
    )


def deploy(shell: NodeShell) -> None:
    install(shell, upload(shell))
    wait_until_answering(shell)
