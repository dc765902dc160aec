"""A container's mounts from create to start: what the engine adds, makes and writes for crun.

At create: VolumesFrom is expanded, the image's VOLUMEs become anonymous volumes, and every
volume a mount names exists (named ones made if missing, anonymous ones given a random name).
At start, in the mounted rootfs: each target is made without leaving the rootfs (crun resolves
mount destinations inside the rootfs too, so both agree on where a symlinked target lands), a
missing Binds source is made on the node as dockerd does, and a new volume gets the image's
content at its path (Docker's copy-up) unless nocopy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Any

from .. import beneath
from ..errors import BadParameter, EngineError
from .model import Container, CreateSpec, MountSpec
from .mounts import clean_target
from .store import ContainerStore
from .volumes import VolumeStore

MAX_COPY_DEPTH = 128
COPY_CHUNK = 1 << 20


def expand(spec: CreateSpec, image_config: dict[str, Any], containers: ContainerStore) -> None:
    """VolumesFrom's mounts and the image's VOLUMEs, where no mount of the body has the target."""
    taken = {m.target for m in spec.mounts}
    for entry in spec.volumes_from:
        ref, _, mode = entry.partition(":")
        source = containers.get(ref)
        for mount in source.spec.mounts:
            if mount.type == "tmpfs" or mount.target in taken:
                continue
            taken.add(mount.target)
            readonly = mode == "ro" if mode else mount.readonly
            spec.mounts.append(MountSpec(mount.type, mount.target, mount.source, readonly,
                                         [o for o in mount.options if not o.startswith("label:")],
                                         origin="volumes_from"))
    volumes = (image_config.get("config") or {}).get("Volumes") or {}
    if isinstance(volumes, dict):
        for raw in sorted(volumes):
            try:
                target = clean_target(raw, "the image's Volumes")
            except BadParameter:
                continue  # an image's own odd entry ("/" or relative): dockerd skips it too
            if target not in taken:
                taken.add(target)
                spec.mounts.append(MountSpec("volume", target, "", anonymous=True, origin="image"))


def ensure_volumes(spec: CreateSpec, volumes: VolumeStore) -> list[str]:
    """Every volume the mounts name, made if missing; returns those made (undone if create fails)."""
    made: list[str] = []
    for mount in spec.mounts:
        if mount.type != "volume":
            continue
        labels = dict(o[len("label:"):].partition("=")[::2] for o in mount.options if o.startswith("label:"))
        volume, new = volumes.create(mount.source, labels)
        mount.source = volume.name
        if new:
            made.append(volume.name)
    return made


def users_of(name: str, containers: list[Container]) -> list[str]:
    """The ids of the containers whose mounts name the volume."""
    return [c.id for c in containers if any(m.type == "volume" and m.source == name for m in c.spec.mounts)]


def oci_mounts(spec: CreateSpec, volumes: VolumeStore) -> list[dict[str, Any]]:
    """The config.json entries, parents before children (Docker sorts by depth too)."""
    entries = []
    for mount in sorted(spec.mounts, key=lambda m: m.target.count("/")):
        ro = ["ro"] if mount.readonly or (mount.type == "tmpfs" and "ro" in mount.options) else []
        if mount.type == "tmpfs":
            given = [o for o in mount.options if o not in ("ro", "rw")]
            exec_flag = [] if "exec" in given or "noexec" in given else ["noexec"]
            options = ["nosuid", "nodev", *exec_flag, *given, *ro]
            entries.append({"destination": mount.target, "type": "tmpfs", "source": "tmpfs",
                            "options": options})
            continue
        source = str(volumes.data_dir(mount.source)) if mount.type == "volume" else mount.source
        propagation = [o for o in mount.options if o not in ("nocopy",) and not o.startswith("label:")]
        entries.append({"destination": mount.target, "type": "bind", "source": source,
                        "options": ["rbind", *(propagation or ["rprivate"]), *ro]})
    return entries


def prepare(container: Container, rootfs: Path, volumes: VolumeStore) -> None:
    """Make targets (and missing Binds sources), then copy the image's content into new volumes."""
    first = container.state.started_at.startswith("0001-")
    with beneath.open_tree(rootfs) as rootfd:
        for mount in container.spec.mounts:
            source_is_file = False
            if mount.type == "bind":
                if not os.path.exists(mount.source):
                    if mount.origin != "binds":
                        raise EngineError(f"bind source path does not exist: {mount.source[:256]}", 400)
                    os.makedirs(mount.source, 0o755, exist_ok=True)
                source_is_file = not os.path.isdir(mount.source)
            try:
                make_target(rootfd, mount.target, source_is_file)
            except OSError as exc:
                raise EngineError(f"cannot make mount target {mount.target[:256]} in the container: "
                                  f"{exc.strerror}", 400) from None
            if mount.type == "volume" and first and "nocopy" not in mount.options:
                copy_up(rootfd, mount.target, volumes.data_dir(mount.source))


def resolve_target(rootfd: int, target: str) -> list[str]:
    """The symlink-free components target names in the rootfs, read as a chroot would, missing
    ones included (beneath a missing directory nothing is a symlink yet)."""
    pending = [p for p in reversed(target.split("/")) if p]
    resolved: list[str] = []
    links, missing = 0, False
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        link = None
        if not missing:
            try:
                parent = beneath.open_beneath(rootfd, "/".join(resolved), beneath.DIR_FLAGS)
            except FileNotFoundError:
                missing = True
            else:
                with beneath.opened(parent), contextlib.suppress(OSError):
                    link = os.readlink(part, dir_fd=parent)
        if link is None:
            resolved.append(part)
            continue
        links += 1
        if links > beneath.MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), target)
        if link.startswith("/"):
            resolved = []
        pending.extend(p for p in reversed(link.split("/")) if p)
    return resolved


def make_target(rootfd: int, target: str, as_file: bool) -> None:
    """The mount point at target in the rootfs, made where missing, as crun will resolve it:
    the image's symlinks are followed inside the rootfs, never out of it."""
    parts = resolve_target(rootfd, target)
    if not parts:
        raise EngineError(f"mount target {target[:256]} resolves to the container's root", 400)
    if not as_file:
        os.close(beneath.makedirs_beneath(rootfd, "/".join(parts)))
        return
    with beneath.opened(beneath.makedirs_beneath(rootfd, "/".join(parts[:-1]))) as parentfd, \
            contextlib.suppress(FileExistsError):
        os.close(os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644, dir_fd=parentfd))


def copy_up(rootfd: int, target: str, data: Path) -> None:
    """The image's directory at target into an empty volume, following no symlink on either side."""
    try:
        srcfd = beneath.open_in_root(rootfd, target, beneath.DIR_FLAGS)
    except OSError:
        return  # nothing there (or not a directory): nothing to copy
    with beneath.opened(srcfd), beneath.open_tree(data) as dstfd:
        if os.listdir(dstfd):
            return  # a volume with content keeps it
        st = os.fstat(srcfd)
        with contextlib.suppress(OSError):
            os.fchown(dstfd, st.st_uid, st.st_gid)
            os.fchmod(dstfd, stat.S_IMODE(st.st_mode))
        _copy_tree(srcfd, dstfd, 0)


def _copy_tree(srcfd: int, dstfd: int, depth: int) -> None:
    if depth > MAX_COPY_DEPTH:
        raise EngineError(f"copy of volume content: directories nested deeper than {MAX_COPY_DEPTH}", 400)
    for name in os.listdir(srcfd):
        st = os.stat(name, dir_fd=srcfd, follow_symlinks=False)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dstfd)
            with beneath.opened(os.open(name, beneath.DIR_FLAGS | os.O_NOFOLLOW, dir_fd=srcfd)) as sub, \
                    beneath.opened(os.open(name, beneath.DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dstfd)) as out:
                _copy_tree(sub, out, depth + 1)
                _own(out, st, mode)
        elif stat.S_ISREG(st.st_mode):
            with beneath.opened(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=srcfd)) as inp, \
                    beneath.opened(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                           | os.O_CLOEXEC, 0o600, dir_fd=dstfd)) as out:
                while chunk := os.read(inp, COPY_CHUNK):
                    os.write(out, chunk)
                _own(out, st, mode)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=srcfd), name, dir_fd=dstfd)
            with contextlib.suppress(OSError):
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dstfd, follow_symlinks=False)
        # devices, fifos and sockets are not copied: a volume holds data


def _own(fd: int, st: os.stat_result, mode: int) -> None:
    with contextlib.suppress(OSError):
        os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, mode)
    with contextlib.suppress(OSError):
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def source_for(spec: CreateSpec, path: str, volumes: VolumeStore) -> tuple[Path, str] | None:
    """The node directory and relative path behind a container path that lies in a bind or a
    volume (the innermost mount wins), for archive and cp, which must see what the container
    sees; None when the path is in the rootfs (or a tmpfs, which only exists while it runs)."""
    clean = os.path.normpath("/" + path.lstrip("/"))
    best: MountSpec | None = None
    for mount in spec.mounts:
        if (clean == mount.target or clean.startswith(mount.target + "/")) \
                and (best is None or len(mount.target) > len(best.target)):
            best = mount
    if best is None or best.type == "tmpfs":
        return None
    root = volumes.data_dir(best.source) if best.type == "volume" else Path(best.source)
    return root, clean[len(best.target):].lstrip("/")
