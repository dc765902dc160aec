"""Opening libvirt: the embedded QEMU driver by default, any URI on request."""

from __future__ import annotations

import logging
import os
import pwd
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import libvirt

from ..errors import MissingToolError, UnreachableHypervisorError, UserInputError
from ..templating import render
from . import capabilities_cache

log = logging.getLogger(__name__)

# QEMU's monitor socket lives under the embedded root; UNIX socket paths stop at 108 bytes.
MAX_EMBED_ROOT = 60
QEMU_ACCOUNT = "libvirt-qemu"

_event_loop_started = False
_event_loop_lock = threading.Lock()


def _ignore_libvirt_errors(_context: object, _error: object) -> None:
    """libvirt prints every error to stderr; ours are raised as exceptions instead."""


def start_event_loop() -> None:
    """The embedded driver needs an event loop running in this process."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.registerErrorHandler(_ignore_libvirt_errors, None)
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def embedded_uri(root: Path) -> str:
    return f"qemu:///embed?root={root}"


def embedded_root(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "qemu" and parsed.path == "/embed":
        roots = parse_qs(parsed.query).get("root")
        if roots:
            return Path(roots[0])
    return None


def check_qemu_account() -> None:
    """libvirt parses its built-in default QEMU user before it reads any qemu.conf."""
    try:
        pwd.getpwnam(QEMU_ACCOUNT)
    except KeyError:
        raise MissingToolError(
            f"the {QEMU_ACCOUNT!r} account libvirt expects does not exist; "
            "create it with the README's set-up command"
        ) from None


def prepare_embedded_root(root: Path) -> None:
    if len(str(root)) > MAX_EMBED_ROOT:
        raise UserInputError(
            f"state dir {root} is too long for QEMU's monitor socket "
            f"(at most {MAX_EMBED_ROOT} characters); set LAB_HOME to a shorter path"
        )
    check_qemu_account()
    (root / "etc").mkdir(parents=True, exist_ok=True)

    conf = root / "etc" / "qemu.conf"
    conf.write_text(render("qemu.conf.j2", as_root=os.geteuid() == 0))


def open_connection(uri: str) -> libvirt.virConnect:
    start_event_loop()
    root = embedded_root(uri)
    if root is not None:
        prepare_embedded_root(root)
        capabilities_cache.seed(root)
    log.debug("libvirt: open %s", uri)
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as error:
        message = (error.get_error_message() or str(error)).splitlines()[0]
        raise UnreachableHypervisorError(f"cannot open libvirt at {uri}: {message}") from error


def close_connection(connection: libvirt.virConnect) -> None:
    try:
        root = embedded_root(connection.getURI())
        log.debug("libvirt: close %s", connection.getURI())
        connection.close()
    except libvirt.libvirtError:
        return
    if root is not None:
        capabilities_cache.keep(root)
