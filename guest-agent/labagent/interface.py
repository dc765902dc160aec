"""What the API's endpoints and the image builder use of the engine, declared.

labagent.engine.Engine is the one implementation; the endpoints name this Protocol, so
they depend on these members only and a test may serve any object that has them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .containers.execs import Execs
    from .containers.lifecycle import Lifecycle
    from .containers.store import ContainerStore
    from .containers.volumes import VolumeStore
    from .events import Events
    from .images.store import ImageStore
    from .network.joins import Networks


class EngineInterface(Protocol):
    @property
    def root(self) -> Path: ...
    @property
    def containers(self) -> ContainerStore: ...
    @property
    def images(self) -> ImageStore: ...
    @property
    def lifecycle(self) -> Lifecycle: ...
    @property
    def execs(self) -> Execs: ...
    @property
    def events(self) -> Events: ...
    @property
    def volumes(self) -> VolumeStore: ...
    @property
    def networks(self) -> Networks: ...

    def load(self, tarball: Path) -> list[str]: ...
    def remove_image(self, ref: str, force: bool = False) -> list[dict[str, str]]: ...
    def remove_container(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...
