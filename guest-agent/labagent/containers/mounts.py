"""A create body's storage fields -> MountSpecs: Binds, Mounts, Tmpfs, Config.Volumes, VolumesFrom.

Everything here is client input: targets must be absolute and are cleaned (`/../../etc` is the
container's /etc), the rootfs itself and the kernel's /proc and /sys are refused, volume names
follow Docker's rule, tmpfs options come from a whitelist with bounded values, and every field
of a Mount is honoured or refused by name. What needs the engine (volumes_from, the image's
volumes, naming anonymous volumes) happens at create, in mountplan.py.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from ..api.createfields import blank, unset
from ..errors import BadParameter
from ..units import parse_bytes
from .model import CreateSpec, MountSpec
from .volumes import check_labels, check_volume_name

MAX_MOUNTS = 256
MAX_PATH = 4096
FORBIDDEN_TARGETS = ("/proc", "/sys")  # the kernel's views: hiding them is no one's business
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
TMPFS_FLAGS = ("noexec", "exec", "nosuid", "nodev", "ro", "rw")
TMPFS_SIZE_RE = re.compile(r"(\d{1,20})([kmgKMG]?)|(\d{1,3})%")
NUMBER_RE = re.compile(r"\d{1,10}")
MAX_ID = (1 << 32) - 2
MAX_INODES = 1 << 32
FALLBACK_MEMORY = 1 << 30


def node_memory() -> int:
    """The node's RAM: no tmpfs may be asked to hold more."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            return int(handle.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return FALLBACK_MEMORY


def clean_target(raw: Any, where: str) -> str:
    """An absolute container path, cleaned; never the rootfs itself, /proc or /sys."""
    if not isinstance(raw, str) or not raw:
        raise BadParameter(f"{where}: the mount target must be a non-empty string")
    if len(raw) > MAX_PATH or "\0" in raw:
        raise BadParameter(f"{where}: invalid mount target")
    if not raw.startswith("/"):
        raise BadParameter(f"{where}: invalid mount config: mount path must be absolute: {raw[:64]!r}")
    target = posixpath.normpath("/" + raw.lstrip("/"))
    if target == "/":
        raise BadParameter(f"{where}: invalid specification: destination can't be '/'")
    for forbidden in FORBIDDEN_TARGETS:
        if target == forbidden or target.startswith(forbidden + "/"):
            raise BadParameter(f"{where}: {target[:64]} is not allowed as a mount target")
    return target


def clean_source(raw: Any, where: str) -> str:
    """An absolute node path, cleaned (the API is root-only on the node, as dockerd's is)."""
    if not isinstance(raw, str) or not raw.startswith("/") or len(raw) > MAX_PATH or "\0" in raw:
        raise BadParameter(f"{where}: invalid mount config: bind source must be an absolute path")
    return posixpath.normpath(raw)


def tmpfs_options(text: Any, where: str) -> list[str]:
    """`size=64m,mode=1777,...` split and checked against Docker's whitelist, values bounded."""
    if not isinstance(text, str) or len(text) > 1024:
        raise BadParameter(f"{where}: tmpfs options must be a string")
    options = [opt for opt in text.split(",") if opt]
    seen: set[str] = set()
    for opt in options:
        key, eq, value = opt.partition("=")
        if key in seen:
            raise BadParameter(f"{where}: tmpfs option {key!r} given twice")
        seen.add(key)
        if key in TMPFS_FLAGS and not eq:
            continue
        if not eq:
            raise BadParameter(f"{where}: tmpfs option {opt[:32]!r} is not supported")
        if key == "size":
            _tmpfs_size(value, where)
        elif key == "mode":
            if not re.fullmatch(r"[0-7]{1,4}", value):
                raise BadParameter(f"{where}: invalid tmpfs mode {value[:16]!r} (want octal, at most 7777)")
        elif key == "nr_inodes":
            number = re.fullmatch(r"(\d{1,12})([kmgKMG]?)", value)
            if not number or parse_bytes(value) > MAX_INODES:
                raise BadParameter(f"{where}: invalid tmpfs nr_inodes {value[:16]!r}")
        elif key in ("uid", "gid"):
            if not NUMBER_RE.fullmatch(value) or int(value) > MAX_ID:
                raise BadParameter(f"{where}: invalid tmpfs {key} {value[:16]!r}")
        else:
            raise BadParameter(f"{where}: tmpfs option {key[:32]!r} is not supported (only size, mode, "
                               "nr_inodes, uid, gid, noexec, exec, nosuid, nodev, ro, rw)")
    return options


def _tmpfs_size(value: str, where: str) -> None:
    match = TMPFS_SIZE_RE.fullmatch(value)
    if not match:
        raise BadParameter(f"{where}: invalid tmpfs size {value[:16]!r}")
    if match.group(3) is not None:
        if not 0 < int(match.group(3)) <= 100:
            raise BadParameter(f"{where}: tmpfs size {value} must be 1% to 100% of memory")
        return
    limit = node_memory()
    if parse_bytes(value) > limit:
        raise BadParameter(f"{where}: tmpfs size {value} exceeds the node's memory ({limit} bytes)")


def _bind_modes(modes: list[str], kind: str, where: str) -> tuple[bool, list[str]]:
    readonly, options = False, []
    for mode in modes:
        if mode in ("ro", "rw"):
            readonly = mode == "ro"
        elif mode in PROPAGATIONS and kind == "bind":
            options.append(mode)
        elif mode == "nocopy" and kind == "volume":
            options.append("nocopy")
        else:
            raise BadParameter(f"{where}: invalid mode: {mode[:32]} (want ro, rw"
                               + (", a propagation" if kind == "bind" else ", nocopy") + ")")
    return readonly, options


def _is_mode(text: str) -> bool:
    return all(m in ("ro", "rw", "nocopy", *PROPAGATIONS) for m in text.split(","))


def parse_bind(text: Any, where: str) -> MountSpec:
    """`name:/path[:ro|rw|nocopy]` is a named volume, `/node/path:/path[:ro|rw|propagation]` a bind,
    and `/path[:ro|rw]` alone an anonymous volume (as dockerd parses Binds)."""
    if not isinstance(text, str) or len(text) > 2 * MAX_PATH:
        raise BadParameter(f"{where} must be a string")
    parts = text.split(":")
    if len(parts) == 1 or (len(parts) == 2 and _is_mode(parts[1])):  # `/path[:mode]`: an anonymous volume
        readonly, options = _bind_modes(parts[1].split(",") if len(parts) == 2 else [], "volume", where)
        return MountSpec("volume", clean_target(parts[0], where), "", readonly, options, anonymous=True,
                         origin="binds")
    if len(parts) not in (2, 3):
        raise BadParameter(f"{where}: invalid volume specification: {text[:64]!r}")
    source, target = parts[0], clean_target(parts[1], where)
    kind = "bind" if source.startswith("/") else "volume"
    readonly, options = _bind_modes(parts[2].split(",") if len(parts) == 3 else [], kind, where)
    if kind == "bind":
        return MountSpec("bind", target, clean_source(source, where), readonly, options, origin="binds")
    return MountSpec("volume", target, check_volume_name(source), readonly, options, origin="binds")


def _struct(value: Any, where: str, known: dict[str, Any]) -> dict[str, Any]:
    """A sub-object of a Mount: known keys only (each checked by its own test), the rest blank."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameter(f"{where} must be an object")
    for key, item in value.items():
        accept = known.get(key)
        if (accept is None and not blank(item)) or (accept is not None and not accept(item)):
            raise BadParameter(f"{where}.{key}={str(item)[:48]!r} is not supported by this engine")
    return value


def _is_bool(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def parse_mount(item: Any, where: str) -> MountSpec:
    """One HostConfig.Mounts entry, as the Docker API defines it."""
    fields = {"Type": lambda v: isinstance(v, str), "Source": lambda v: v is None or isinstance(v, str),
              "Target": lambda v: isinstance(v, str), "ReadOnly": _is_bool,
              "Consistency": lambda v: v in (None, "", "default", "consistent", "cached", "delegated"),
              "BindOptions": lambda v: True, "VolumeOptions": lambda v: True, "TmpfsOptions": lambda v: True}
    mount = _struct(item, where, fields)
    if not mount:
        raise BadParameter(f"{where} must be an object")
    kind, source = mount.get("Type"), mount.get("Source") or ""
    target = clean_target(mount.get("Target"), f"{where}.Target")
    readonly = bool(mount.get("ReadOnly"))
    for other in ("BindOptions", "VolumeOptions", "TmpfsOptions"):
        if other[:-7].lower() != kind and not blank(mount.get(other)):
            raise BadParameter(f"{where}.{other} is not allowed with type {kind!r}")
    if kind == "bind":
        opts = _struct(mount.get("BindOptions"), f"{where}.BindOptions", {
            "Propagation": lambda v: v in (None, "", *PROPAGATIONS), "NonRecursive": unset,
            "CreateMountpoint": _is_bool})
        path = clean_source(source, f"{where}.Source")
        if not opts.get("CreateMountpoint") and not os.path.exists(path):
            raise BadParameter(f'invalid mount config for type "bind": bind source path does not exist: '
                               f"{path[:256]}")
        propagation = [opts["Propagation"]] if opts.get("Propagation") else []
        return MountSpec("bind", target, path, readonly, propagation, origin="mounts")
    if kind == "volume":
        opts = _struct(mount.get("VolumeOptions"), f"{where}.VolumeOptions", {
            "NoCopy": _is_bool, "Labels": lambda v: True,
            "DriverConfig": lambda v: blank(v) or (isinstance(v, dict) and v.get("Name") in ("", None, "local")
            and blank(v.get("Options")))})
        labels = check_labels(opts.get("Labels"), f"{where}.VolumeOptions.Labels")
        options = ["nocopy"] if opts.get("NoCopy") else []
        options += [f"label:{k}={v}" for k, v in labels.items()]
        name = check_volume_name(source) if source else ""
        return MountSpec("volume", target, name, readonly, options, anonymous=not name, origin="mounts")
    if kind == "tmpfs":
        if source:
            raise BadParameter('invalid mount config for type "tmpfs": Source must not be set')
        opts = _struct(mount.get("TmpfsOptions"), f"{where}.TmpfsOptions",
                       {"SizeBytes": _is_int, "Mode": _is_int})
        size, mode = opts.get("SizeBytes") or 0, opts.get("Mode") or 0
        if size < 0 or size > node_memory():
            raise BadParameter(f"{where}.TmpfsOptions.SizeBytes={size} is out of range (0 to the node's memory)")
        if not 0 <= mode <= 0o7777:
            raise BadParameter(f"{where}.TmpfsOptions.Mode={mode} is out of range (0 to 0o7777)")
        options = ([f"size={size}"] if size else []) + ([f"mode={mode:o}"] if mode else [])
        return MountSpec("tmpfs", target, "", readonly, options, origin="mounts")
    raise BadParameter(f"{where}.Type={str(kind)[:32]!r}: mount type must be bind, volume or tmpfs")


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_MOUNTS:
        raise BadParameter(f"{where} must be a list of at most {MAX_MOUNTS} entries")
    return value


def _map(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_MOUNTS:
        raise BadParameter(f"{where} must be an object of at most {MAX_MOUNTS} entries")
    return value


def parse_volumes_from(value: Any) -> list[str]:
    """`ctr[:ro|rw]`, as given (the containers are looked up at create)."""
    entries = _list(value, "HostConfig.VolumesFrom")
    for entry in entries:
        if not isinstance(entry, str):
            raise BadParameter("HostConfig.VolumesFrom must be a list of strings")
        ref, _, mode = entry.partition(":")
        if not ref or len(ref) > 256 or mode not in ("", "ro", "rw"):
            raise BadParameter(f"HostConfig.VolumesFrom: invalid entry {entry[:64]!r} (want CONTAINER[:ro|rw])")
    return list(entries)


def from_body(body: dict[str, Any], host: dict[str, Any]) -> list[MountSpec]:
    """Binds, Mounts, Tmpfs, then Config.Volumes for targets none of them covers."""
    binds, mounts = _list(host.get("Binds"), "HostConfig.Binds"), _list(host.get("Mounts"), "HostConfig.Mounts")
    explicit = [parse_bind(b, f"HostConfig.Binds[{i}]") for i, b in enumerate(binds)]
    explicit += [parse_mount(m, f"HostConfig.Mounts[{i}]") for i, m in enumerate(mounts)]
    for target, text in _map(host.get("Tmpfs"), "HostConfig.Tmpfs").items():
        where = f"HostConfig.Tmpfs[{str(target)[:64]!r}]"
        explicit.append(MountSpec("tmpfs", clean_target(target, where), "", False,
                                  tmpfs_options(text, where), origin="tmpfs"))
    seen: set[str] = set()
    for mount in explicit:
        if mount.target in seen:
            raise BadParameter(f"Duplicate mount point: {mount.target[:256]}")
        seen.add(mount.target)
    anonymous = []
    for target in _map(body.get("Volumes"), "Volumes"):
        path = clean_target(target, f"Volumes[{str(target)[:64]!r}]")
        if path not in seen:
            seen.add(path)
            anonymous.append(MountSpec("volume", path, "", anonymous=True, origin="volumes"))
    if len(explicit) + len(anonymous) > MAX_MOUNTS:
        raise BadParameter(f"at most {MAX_MOUNTS} mounts per container")
    return explicit + anonymous


def read_into(spec: CreateSpec, body: dict[str, Any], host: dict[str, Any]) -> None:
    """createbody.spec_from_body's one call for this area."""
    spec.mounts = from_body(body, host)
    spec.volumes_from = parse_volumes_from(host.get("VolumesFrom"))
