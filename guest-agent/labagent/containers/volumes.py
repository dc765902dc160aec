"""The volume store: Docker's "local" volumes, one directory each under <root>/volumes.

A volume is `<root>/volumes/<name>/_data` (what containers mount, Docker's layout) next to
`volume.json` (its record). Names follow Docker's rule and never hold a slash, so a volume's
directory is always a direct child of the volumes root, whatever a client sends.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadParameter, Conflict, NotFound
from ..events import Events
from ..fsutil import new_id, read_json, rfc3339, rmtree, write_json

log = logging.getLogger(__name__)
VOLUME_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
MAX_NAME = 255  # one path component
MAX_LABELS = 256
MAX_LABEL_BYTES = 64 << 10
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # what dockerd 23+ marks anonymous volumes with
RECORD = "volume.json"
DATA = "_data"


def check_volume_name(name: Any) -> str:
    """Docker's volume-name rule, bounded to one path component."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not VOLUME_NAME_RE.fullmatch(name):
        shown = str(name)[:64]
        raise BadParameter(f'create {shown}: "{shown}" includes invalid characters for a local volume name, '
                           'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                           "directory, use absolute path")
    return name


def check_labels(labels: Any, field_name: str) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in labels.items()):
        raise BadParameter(f"{field_name} must be an object of strings")
    if len(labels) > MAX_LABELS or sum(len(k) + len(v) for k, v in labels.items()) > MAX_LABEL_BYTES:
        raise BadParameter(f"{field_name}: too many labels (at most {MAX_LABELS}, {MAX_LABEL_BYTES} bytes)")
    return dict(labels)


@dataclass
class Volume:
    name: str
    created: str
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] | None = None

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels


class VolumeStore:
    """Records in memory and on disk; the callers check use by containers (under their lock)."""

    def __init__(self, root: Path) -> None:
        self.dir = root
        self.lock = threading.RLock()
        self.events = Events()  # the engine's bus replaces this one
        self._items: dict[str, Volume] | None = None  # read on first use

    def _all(self) -> dict[str, Volume]:
        if self._items is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o701)
            self._items = {}
            for entry in sorted(self.dir.iterdir()):
                try:
                    data = read_json(entry / RECORD)
                    volume = Volume(check_volume_name(entry.name), str(data["created"]),
                                    check_labels(data.get("labels"), "labels"), data.get("options"))
                except (OSError, ValueError, KeyError, TypeError, BadParameter) as exc:
                    log.error("skipping unreadable volume record %s: %s", entry, exc)
                    continue
                self._items[volume.name] = volume
        return self._items

    def data_dir(self, name: str) -> Path:
        """Where the volume's content lives (its Mountpoint); name checked again, so never outside."""
        return self.dir / check_volume_name(name) / DATA

    def create(self, name: str = "", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> tuple[Volume, bool]:
        """The volume called name, made if missing (True when made). No name: a new anonymous one."""
        labels = dict(labels or {})
        if not name:
            name = new_id()
            labels.setdefault(ANONYMOUS_LABEL, "")
        check_volume_name(name)
        with self.lock:
            items = self._all()
            if name in items:
                return items[name], False
            volume = Volume(name, rfc3339(), labels, options)
            home = self.dir / name
            try:
                (home / DATA).mkdir(parents=True)
                os.chmod(home / DATA, 0o755)
                write_json(home / RECORD, {"created": volume.created, "labels": labels, "options": options})
            except BaseException:
                rmtree(home)
                raise
            items[name] = volume
        self.events.emit("volume", "create", name, driver="local")
        return volume, True

    def get(self, name: str) -> Volume:
        with self.lock:
            volume = self._all().get(name) if isinstance(name, str) else None
        if volume is None:
            raise NotFound(f"get {str(name)[:64]}: no such volume")
        return volume

    def exists(self, name: str) -> bool:
        with self.lock:
            return name in self._all()

    def all(self) -> list[Volume]:
        with self.lock:
            return sorted(self._all().values(), key=lambda v: v.name)

    def remove(self, name: str, users: list[str]) -> None:
        """Remove a volume no container uses; users are the containers that still name it."""
        with self.lock:
            self.get(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            rmtree(self.dir / check_volume_name(name))
            del self._all()[name]
        self.events.emit("volume", "destroy", name, driver="local")

    def size(self, name: str) -> int:
        """Bytes held (for prune's SpaceReclaimed): a walk that follows no symlink."""
        total = 0
        for top, dirs, files in os.walk(self.data_dir(name)):
            for item in [*dirs, *files]:
                try:
                    total += os.lstat(os.path.join(top, item)).st_blocks * 512
                except OSError:
                    pass
        return total

    def view(self, volume: Volume) -> dict[str, Any]:
        """Docker's Volume shape (create, inspect, list)."""
        return {"Name": volume.name, "Driver": "local", "Mountpoint": str(self.data_dir(volume.name)),
                "CreatedAt": volume.created.split(".")[0] + "Z", "Labels": dict(volume.labels),
                "Scope": "local", "Options": volume.options}
