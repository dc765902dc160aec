"""The engine: wires stores, runtime and network together, and re-adopts containers at start."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .containers import restart
from .containers.execs import Execs
from .containers.health import Health
from .containers.lifecycle import Lifecycle
from .containers.store import ContainerStore
from .events import Events
from .images import busybox, delete
from .images.layers import Whiteouts
from .images.load import load_archive
from .images.store import ImageStore
from .network.bridge import Network
from .network.interface import BridgeNetworks, ContainerNetwork
from .network.joins import Networks
from .network.networks import NetworkStore
from .network.userbridge import UserBridges
from .runtime.cgroups import Cgroups
from .runtime.crun import Runtime
from .runtime.overlay import Mounter

log = logging.getLogger(__name__)


@dataclass
class Seams:
    """Everything that touches the kernel, swappable for fakes in tests."""

    runtime: Runtime = field(default_factory=Runtime)
    network: ContainerNetwork = field(default_factory=Network)
    bridges: BridgeNetworks = field(default_factory=UserBridges)  # user-defined networks
    cgroups: Cgroups = field(default_factory=Cgroups)
    mounter: Mounter = field(default_factory=Mounter)
    whiteouts: Whiteouts = field(default_factory=Whiteouts)
    busybox: Path = Path("/bin/busybox")
    resolv: Path = Path("/etc/resolv.conf")


class Engine:
    def __init__(self, root: Path, seams: Seams | None = None) -> None:
        self.root = root
        self.seams = seams or Seams()
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        self.events = Events()
        self.images = ImageStore(root, self.seams.whiteouts)
        self.images.events = self.events
        self.containers = ContainerStore(root)
        self.lifecycle = Lifecycle(self.containers, self.images, self.seams.runtime, self.seams.network,
                                   self.seams.cgroups, self.seams.mounter, self.seams.resolv)
        self.lifecycle.events = self.events
        self.volumes = self.lifecycle.volumes
        self.volumes.events = self.events
        self.execs = Execs(self.containers, self.seams.runtime)
        self.execs.events = self.events
        self.lifecycle.health = Health(self.containers, self.execs)
        self.lifecycle.health.events = self.events
        self.networks = Networks(NetworkStore(root), self.seams.bridges, self.containers)
        self.networks.events = self.events
        self.networks.refresh = self.lifecycle.refresh_network
        self.lifecycle.networks = self.networks

    def startup(self) -> None:
        """Bridge and cgroups, take back what was running, and start building busybox.

        The build (0.6 s or more under TCG, on a node's first start only) runs in the
        background so the API can serve at once; image lookups wait for it. It starts
        last, so it does not compete with the rest of the start-up for the one vCPU.
        """
        self.seams.cgroups.setup()
        self.seams.network.setup()
        wiring = self.seams.network.slot_wiring()
        if wiring is not None:
            wiring.sweep_pool()
        try:
            self.networks.setup()
        except Exception:
            log.exception("could not restore the user-defined networks")
        self.adopt()
        self.build_busybox_in_background()

    def warm(self, pool_size: int = 2) -> None:
        """Once serving: keep ready-made network namespaces for the next starts."""
        self.lifecycle.enable_pool(pool_size)

    def shutdown(self) -> None:
        """Engine stop: containers keep running; unused pooled namespaces go.

        Pending policy restarts are dropped: their records say "restarting", which the next
        start-up honours.
        """
        self.lifecycle.close_pool()
        self.lifecycle.restarts.close()
        if self.lifecycle.health is not None:
            self.lifecycle.health.close()

    def build_busybox_in_background(self) -> threading.Thread | None:
        """Hold the image store while the image is built: every image lookup waits for it."""
        if not busybox.needed(self.images, self.seams.busybox):
            return None
        holding = threading.Event()

        def build() -> None:
            with self.images.exclusive():
                holding.set()
                try:
                    busybox.build(self.images, self.seams.busybox)
                    log.info("built busybox:latest from %s", self.seams.busybox)
                except Exception:
                    log.exception("could not build the busybox image")

        thread = threading.Thread(target=build, name="busybox-build", daemon=True)
        thread.start()
        holding.wait()
        return thread

    def adopt(self) -> None:
        """Running records whose shim lives are supervised again; the rest are marked exited.

        Those found stopped go through the restart policy as any exit does; stopped records
        whose policy says so (always, unless-stopped not stopped by the user) start again.
        """
        runtime = self.seams.runtime
        again: list[str] = []
        for container in self.containers.load():
            self.containers.logfile(container.id)
            if not container.running:
                if container.state.status != "created" and \
                        restart.start_at_startup(container.spec.restart, container.state):
                    again.append(container.id)
                continue
            if runtime.alive(container.state.shim_pid, container.state.shim_start):
                log.info("re-adopting running container %s", container.name)
                container.state.pid = runtime.read_pid(self.containers.bundle(container.id)) or container.state.pid
                self.lifecycle.supervise(container)
                self.lifecycle.resume_health(container)
            else:
                log.info("container %s stopped while the engine was away", container.name)
                self.lifecycle.on_exit(container.id)
        try:
            self.lifecycle.refresh_network()
        except Exception:
            log.exception("could not restore port rules")
        if again:
            threading.Thread(target=self._start_again, args=(again,), name="restart-policy",
                             daemon=True).start()

    def _start_again(self, ids: list[str]) -> None:
        """Start-up's restarts, in the background: the API serves meanwhile, as dockerd's does."""
        for cid in ids:
            try:
                log.info("restart policy: starting %s again", cid[:12])
                self.lifecycle.start(cid)
            except Exception as exc:
                log.warning("restart policy: could not start %s: %s", cid[:12], exc)

    def load(self, tarball: Path) -> list[str]:
        return load_archive(self.images, tarball)

    def images_in_use(self) -> set[str]:
        return {c.spec.image_id for c in self.containers.all()}

    def remove_image(self, ref: str, force: bool = False) -> list[dict[str, str]]:
        return delete.remove(self.images, ref, delete.users_of(self.containers.all()), force)

    def remove_container(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        container = self.containers.get(ref)
        self.lifecycle.remove(ref, force, volumes)
        self.execs.forget_container(container.id)
