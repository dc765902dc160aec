"""The image cache: one directory per recipe hash, complete or absent."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from .recipe import Recipe

BUILD_PREFIX = ".build-"
METADATA = "image.json"


@dataclass
class Image:
    """A built image: a qcow2 base, plus the kernel and initrd to boot it directly."""

    path: Path
    name: str
    key: str
    kernel: str
    initrd: str
    kernel_args: list[str]
    boot: str
    build_seconds: float
    created: float

    @property
    def disk(self) -> Path:
        return self.path / "base.qcow2"

    @property
    def kernel_path(self) -> Path:
        return self.path / self.kernel

    @property
    def initrd_path(self) -> Path:
        return self.path / self.initrd

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def save(self) -> None:
        """Written last: a directory without it is not an image."""
        data = asdict(self)
        data.pop("path")
        (self.path / METADATA).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> Image:
        data = json.loads((path / METADATA).read_text())
        return cls(path=path, **data)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "key": self.key[:12], "path": str(self.path),
            "boot": self.boot, "size_bytes": self.size_bytes(),
            "build_seconds": self.build_seconds, "created": self.created,
        }


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, recipe: Recipe) -> Path:
        return self.root / f"{recipe.name}-{recipe.cache_key()[:16]}"

    def find(self, recipe: Recipe) -> Image | None:
        path = self.path_for(recipe)
        if (path / METADATA).is_file():
            return Image.load(path)
        return None

    def images(self) -> list[Image]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.iterdir()):
            if not path.name.startswith(BUILD_PREFIX) and (path / METADATA).is_file():
                found.append(Image.load(path))
        return found

    def named(self, name: str) -> list[Image]:
        return [image for image in self.images() if image.name == name]

    def remove(self, image: Image) -> None:
        # Rename first, so a crash halfway never leaves something that looks like an image.
        doomed = image.path.with_name(f"{BUILD_PREFIX}rm-{image.path.name}")
        image.path.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def remove_named(self, name: str) -> int:
        images = self.named(name)
        if not images:
            raise UserInputError(f"no cached image named {name!r}")
        for image in images:
            self.remove(image)
        return len(images)

    def sweep_abandoned_builds(self) -> None:
        """Remove temporary dirs left by builds whose process is gone."""
        for path in self.root.glob(f"{BUILD_PREFIX}*"):
            pid_text = path.name.removeprefix(BUILD_PREFIX).split("-")[0]
            if pid_text.isdigit() and _alive(int(pid_text)):
                continue
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
