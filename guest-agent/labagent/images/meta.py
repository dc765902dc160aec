"""What dockerd keeps about an image beside its config: its parent and when it was last tagged.

The parent is the image a build started FROM (or that a loaded archive's manifest.json names),
so `docker rmi` can refuse to delete an image that others were built on, and `history` can say
which entries are the parent's. One small JSON file, written atomically on each change.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..fsutil import ZERO_TIME, read_json, write_json


class ImageMeta:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._parents: dict[str, str] = {}
        self._tagged: dict[str, str] = {}
        try:
            data: Any = read_json(path)
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            self._parents = {k: v for k, v in (data.get("parents") or {}).items()
                             if isinstance(k, str) and isinstance(v, str)}
            self._tagged = {k: v for k, v in (data.get("tagged") or {}).items()
                            if isinstance(k, str) and isinstance(v, str)}

    def _save(self) -> None:
        write_json(self.path, {"parents": self._parents, "tagged": self._tagged})

    def parent(self, image_id: str) -> str:
        return self._parents.get(image_id, "")

    def children(self, image_id: str) -> list[str]:
        return sorted(child for child, parent in self._parents.items() if parent == image_id)

    def set_parent(self, image_id: str, parent: str) -> None:
        with self._lock:
            if parent and parent != image_id and self._parents.get(image_id) != parent:
                self._parents[image_id] = parent
                self._save()

    def last_tag_time(self, image_id: str) -> str:
        return self._tagged.get(image_id, ZERO_TIME)

    def tagged(self, image_id: str, when: str) -> None:
        with self._lock:
            self._tagged[image_id] = when
            self._save()

    def forget(self, image_id: str) -> None:
        with self._lock:
            self._parents.pop(image_id, None)
            self._tagged.pop(image_id, None)
            self._save()
