"""Build `busybox:latest` in the guest from busybox-static, since no registry is reachable."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from ..fsutil import rfc3339
from .store import LAYER_TAR, Image, ImageStore, LayerBlob

TAG = "busybox:latest"
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "proc": 0o555, "sys": 0o555, "tmp": 0o1777,
        "root": 0o700, "home": 0o755, "var": 0o755, "var/www": 0o755, "usr": 0o755}


def applets(busybox: Path) -> list[str]:
    """The applet names this busybox binary provides."""
    out = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True)
    return sorted({a for a in out.stdout.split() if a and "/" not in a and a != "busybox"})


def layer_tar(busybox: Path, names: list[str]) -> bytes:
    """A deterministic tar (fixed mtimes, sorted), so rebuilding gives the same diff id."""
    mtime = int(busybox.stat().st_mtime)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = kind, mode, mtime, link
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for name, mode in sorted(DIRS.items()):
            add(name, tarfile.DIRTYPE, mode)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in names:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD.encode())
        add("etc/group", tarfile.REGTYPE, 0o644, GROUP.encode())
    return buf.getvalue()


def build(store: ImageStore, busybox: Path = Path("/bin/busybox")) -> Image:
    """Store the layer and config, unpack the layer, tag busybox:latest."""
    tar = layer_tar(busybox, applets(busybox))
    blob = store.put_bytes(tar)
    created = rfc3339(busybox.stat().st_mtime)
    config = {
        "architecture": "amd64" if os.uname().machine == "x86_64" else os.uname().machine,
        "os": "linux",
        "created": created,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [blob.digest]},
        "history": [{"created": created, "created_by": "lab-agent: busybox-static from the guest"}],
    }
    data = json.dumps(config, sort_keys=True).encode()
    return store.add_image(data, [LayerBlob(blob.digest, blob.size, LAYER_TAR)], [TAG])


def needed(store: ImageStore, busybox: Path = Path("/bin/busybox")) -> bool:
    """On first start only (or after someone removed the image), and if the binary is there."""
    return busybox.exists() and not any(TAG in image.tags for image in store.images())


def ensure(store: ImageStore, busybox: Path = Path("/bin/busybox")) -> Image | None:
    """Build the image now if it is needed."""
    return build(store, busybox) if needed(store, busybox) else None
