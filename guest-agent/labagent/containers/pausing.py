"""Pause, unpause and rename: the operations on a container that is already made, part of
Lifecycle (it inherits them) but apart from its create/start/stop/exit machinery."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import BadParameter, Conflict
from ..events import Events
from ..runtime.cgroups import Cgroups
from .model import Container
from .store import ContainerStore


class PauseRename:
    """Lifecycle's pause/unpause (the cgroup v2 freezer) and rename (the record and /etc/hosts)."""

    store: ContainerStore
    cgroups: Cgroups
    events: Events

    if TYPE_CHECKING:  # Lifecycle's own
        def _op(self, cid: str) -> threading.Lock: ...

        def refresh_network(self) -> None: ...

    def pause(self, ref: str) -> None:
        """Freeze the container's cgroup (cgroup v2 freezer); it stays running, and paused."""
        container = self.store.get(ref)
        with self._op(container.id):
            if not container.running:
                raise Conflict(f"Container {container.id} is not running")
            if container.state.paused:
                raise Conflict(f"Container {container.id} is already paused")
            self.cgroups.freeze(container.id, True)
            with self.store.lock:
                container.state.paused = True
                self.store.save(container)
        self.events.emit("container", "pause", container.id, name=container.name, image=container.spec.image)

    def unpause(self, ref: str) -> None:
        container = self.store.get(ref)
        with self._op(container.id):
            if not container.state.paused:
                raise Conflict(f"Container {container.id} is not paused")
            self._thaw(container)

    def _thaw(self, container: Container) -> None:
        """Unfreeze without the operation lock, so stop() may call it from anywhere."""
        self.cgroups.freeze(container.id, False)
        with self.store.lock:
            container.state.paused = False
            self.store.save(container)
        self.events.emit("container", "unpause", container.id, name=container.name, image=container.spec.image)

    def rename(self, ref: str, new_name: str) -> None:
        """New name in the record and, for running containers, in every /etc/hosts."""
        container = self.store.get(ref)
        old = container.name
        if new_name == old:
            raise BadParameter("Renaming a container with the same name as its current name")
        with self.store.lock:
            self.store.check_name(new_name)
            container.name = new_name
            self.store.save(container)
        self.refresh_network()
        self.events.emit("container", "rename", container.id, name=new_name, image=container.spec.image,
                         oldName=f"/{old}")
