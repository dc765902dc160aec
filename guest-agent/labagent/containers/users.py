"""A container's User resolved against its own /etc/passwd and /etc/group, as Docker does at start.

`User` is "", "name", "uid", "name:group", "uid:gid" (or a mix). Names are looked up in the
container's files, numbers need no entry; a name that matches nothing is an error in Docker's
words. Without an explicit group the user's supplementary groups come from /etc/group.

The files belong to the image, so they are opened through beneath.open_in_root (a symlinked
/etc/passwd resolves inside the rootfs, never on the node), first as O_PATH so that a FIFO or a
device is refused without being opened, and read up to MAX_FILE bytes.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import beneath
from ..errors import BadParameter

MAX_FILE = 4 << 20
MAX_ID = 2**31 - 1  # Docker's (runc's) range for uids and gids
SPEC_RE = re.compile(r"[^:\s\x00-\x1f\x7f]*(:[^:\s\x00-\x1f\x7f]*)?")  # user[:group], printable
NUMBER_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Account:
    """One line of /etc/passwd (gid is the primary group) or /etc/group (members listed)."""

    name: str
    id: int
    gid: int = 0
    members: tuple[str, ...] = ()


def split_spec(spec: str, field: str = "User") -> tuple[str, str]:
    """("user", "group") from "user[:group]"; anything else is refused before a file is read."""
    if len(spec) > 256 or not SPEC_RE.fullmatch(spec):
        raise BadParameter(f"{field} {spec[:64]!r} is not valid (want user, uid, user:group or uid:gid)")
    user, _, group = spec.partition(":")
    return user, group


def _number(text: str) -> int | None:
    if not NUMBER_RE.fullmatch(text):
        return None
    value = int(text)
    if value > MAX_ID:
        raise BadParameter(f"uids and gids must be in range 0-{MAX_ID}: {text}")
    return value


def read_root_file(rootfd: int, path: str) -> str | None:
    """A small regular file of the rootfs at rootfd, or None when it is not there."""
    try:
        handle = beneath.open_in_root(rootfd, path, os.O_PATH)
    except OSError:
        return None  # missing, or a lookup that tried to leave the root: as Docker, no file
    with beneath.opened(handle):
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise BadParameter(f"{path} in the container is not a regular file")
        if info.st_size > MAX_FILE:
            raise BadParameter(f"{path} in the container is larger than {MAX_FILE >> 20} MiB")
        fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as stream:
        data = stream.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise BadParameter(f"{path} in the container is larger than {MAX_FILE >> 20} MiB")
    return data.decode("utf-8", "replace")


def _id(text: str) -> int | None:
    return int(text) if NUMBER_RE.fullmatch(text) and int(text) <= MAX_ID else None


def parse_passwd(text: str) -> list[Account]:
    """name:password:uid:gid:...; a line without a name or with a bad number is skipped."""
    accounts = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 4 or not fields[0]:
            continue
        uid, gid = _id(fields[2]), _id(fields[3])
        if uid is not None and gid is not None:
            accounts.append(Account(fields[0], uid, gid))
    return accounts


def parse_group(text: str) -> list[Account]:
    """name:password:gid:member,member; malformed lines are skipped."""
    groups = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 3 or not fields[0]:
            continue
        gid = _id(fields[2])
        if gid is not None:
            members = tuple(m for m in (fields[3] if len(fields) > 3 else "").split(",") if m)
            groups.append(Account(fields[0], gid, gid, members))
    return groups


def _match(accounts: list[Account], arg: str, number: int | None) -> Account | None:
    """The first entry with that id (a numeric argument is always an id) or that name."""
    for account in accounts:
        if (account.id == number) if number is not None else (account.name == arg):
            return account
    return None


def resolve_in(passwd: str | None, group: str | None, spec: str,
               group_add: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """process.user for spec, given the container's passwd and group text (None when absent);
    group_add (HostConfig.GroupAdd) names or numbers groups added to the supplementary ones."""
    user_arg, group_arg = split_spec(spec)
    uid_arg = _number(user_arg) if user_arg else 0
    found = _match(parse_passwd(passwd or ""), user_arg, uid_arg)
    if found is None and uid_arg is None:
        raise BadParameter(f"unable to find user {user_arg}: no matching entries in passwd file")
    uid = found.id if found else uid_arg or 0
    gid = found.gid if found else 0
    groups = parse_group(group or "")
    extra: list[int] = []
    if group_arg:
        gid_arg = _number(group_arg)
        entry = _match(groups, group_arg, gid_arg)
        if entry is None and gid_arg is None:
            raise BadParameter(f"unable to find group {group_arg}: no matching entries in group file")
        gid = entry.id if entry else gid_arg or 0
    elif found is not None:  # supplementary groups only in the implicit form, as runc does
        extra = [g.id for g in groups if found.name in g.members]
    for name in group_add:
        number = _number(name)
        entry = _match(groups, name, number)
        if entry is None and number is None:
            raise BadParameter(f"Unable to find group {name}: no matching entries in group file")
        extra.append(entry.id if entry else number or 0)
    additional = list(dict.fromkeys([gid, *extra]))  # primary first, as Docker lists them
    return {"uid": uid, "gid": gid, "additionalGids": additional}


def resolve(rootfs: Path, spec: str, group_add: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """process.user for spec, read from the container's mounted root filesystem."""
    split_spec(spec)  # refuse a malformed spec before touching the tree
    with beneath.open_tree(rootfs) as rootfd:
        passwd = read_root_file(rootfd, "/etc/passwd")
        group = read_root_file(rootfd, "/etc/group")
    return resolve_in(passwd, group, spec, group_add)
