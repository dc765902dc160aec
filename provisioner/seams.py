"""The outside world a use case reaches through: the hypervisor, node shells, base images.

Use cases take a `Seams`; the CLI passes `real_seams()` and unit tests pass fakes
(tests/unit/host), so create, start, status and destroy run without a VM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .hypervisor.libvirt_domains import open_libvirt
from .hypervisor.protocol import HypervisorOpener
from .images.builder import ImageBuilder
from .images.recipe import Recipe
from .images.store import Image, ImageStore
from .paths import images_dir
from .remote import ssh
from .remote.seam import Connector

ImageSource = Callable[[Recipe, Callable[[str], None]], Image]
"""The built (or cached) image for a recipe; the callable reports build progress."""


@dataclass(frozen=True)
class Seams:
    hypervisor: HypervisorOpener
    connect: Connector
    image: ImageSource


def build_image(recipe: Recipe, report: Callable[[str], None]) -> Image:
    return ImageBuilder(ImageStore(images_dir()), report).build(recipe)


def real_seams() -> Seams:
    """libvirt, SSH with pinned host keys, and the host's image cache."""
    return Seams(hypervisor=open_libvirt, connect=ssh.connect, image=build_image)
