"""One QEMU capabilities cache shared by every lab's embedded libvirt.

Each lab has its own embedded libvirt root, and a fresh root probes QEMU before its
first domain: about 4 s, paid again by every `lab create`. libvirt checks a cached
file against the QEMU binary, the kernel and its own version before it trusts it, and
probes again when anything changed, so sharing the files between roots is safe.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..paths import cache_dir

ROOT_SUBDIR = Path("cache") / "qemu" / "capabilities"


def shared_dir() -> Path:
    return cache_dir() / "libvirt-capabilities"


def seed(root: Path) -> None:
    """Give a lab's embedded root the capabilities already probed by another lab."""
    shared = shared_dir()
    if not shared.is_dir():
        return
    target = root / ROOT_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    for source in shared.glob("*.xml"):
        destination = target / source.name
        if not destination.exists():
            shutil.copy2(source, destination)


def keep(root: Path) -> None:
    """Offer what this root probed to the labs that come after it."""
    probed = root / ROOT_SUBDIR
    if not probed.is_dir():
        return
    shared = shared_dir()
    for source in probed.glob("*.xml"):
        destination = shared / source.name
        if destination.exists() and destination.stat().st_mtime >= source.stat().st_mtime:
            continue
        shared.mkdir(parents=True, exist_ok=True)
        partial = destination.with_suffix(f".{os.getpid()}.partial")
        shutil.copy2(source, partial)
        partial.replace(destination)  # atomic: a concurrent reader sees old or new, never half
