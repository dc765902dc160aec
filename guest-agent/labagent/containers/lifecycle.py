"""Container lifecycle: create, start, stop, kill, wait, remove; and what happens on exit
(pause, unpause and rename it inherits from pausing.py).

Every step that builds something (dirs, cgroup, mount, netns, rules) has its undo, run in
reverse when a later step fails, so a failed create or start leaves nothing half-made.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, EngineError, NotModified
from ..events import Events
from ..fsutil import new_id, parse_rfc3339, read_json, rfc3339, rmtree, write_json
from ..images.store import ImageStore
from ..network import addressing, dnsconf
from ..network.interface import ContainerNetwork, SlotWiring
from ..network.nftrules import PortRule
from ..network.pool import NetnsPool, Slot
from ..runtime.cgroups import Cgroups
from ..runtime.crun import Runtime, parse_signal
from ..runtime.filewatch import DirWatch
from ..runtime.overlay import Mounter
from ..runtime.supervisor import Supervisor
from . import health, hostports, mountplan, ocispec, restart, stdio, users
from .model import Container, ContainerState, CreateSpec, NetworkState, PortBinding
from .pausing import PauseRename
from .store import ContainerStore
from .volumes import VolumeStore

if TYPE_CHECKING:
    from ..network.joins import Networks

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0
EXIT_CHECK = 0.05  # seconds between looks at the record while crun starts a container


class ClientGone(Exception):
    """The HTTP client hung up while we waited on its behalf."""


class Lifecycle(PauseRename):
    def __init__(self, store: ContainerStore, images: ImageStore, runtime: Runtime,
                 network: ContainerNetwork, cgroups: Cgroups, mounter: Mounter,
                 resolv: Path = Path("/etc/resolv.conf")) -> None:
        self.store, self.images, self.runtime = store, images, runtime
        self.network, self.cgroups, self.mounter = network, cgroups, mounter
        self.resolv = resolv
        self._starting: set[str] = set()
        self._op_locks: dict[str, threading.Lock] = {}
        self.pool: NetnsPool | None = None
        self._wiring: SlotWiring | None = None  # the network's side of the pool, once enabled
        self._slots: dict[str, Slot] = {}  # taken from the pool, not yet claimed
        self.supervisor = Supervisor()
        self.events = Events()  # the engine's bus replaces this one
        self.restarts = restart.Restarts(self._policy_start)
        self.health: health.Health | None = None  # the engine's probes (they run through its Execs)
        self.volumes = VolumeStore(store.dir.parent / "volumes")
        self.networks: Networks | None = None  # user-defined networks, set by the engine

    def enable_pool(self, size: int = 2) -> None:
        """Keep `size` ready-made network namespaces, if the network can build them."""
        wiring = self.network.slot_wiring()
        if self.pool is not None or wiring is None or size <= 0:
            return
        self._wiring = wiring
        self.pool = NetnsPool(wiring.build_slot, wiring.destroy_slot, self._allocate_for_pool, size)
        self.pool.start()

    def close_pool(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def _used_ips(self) -> set[str]:
        """Addresses of running and starting containers and of pooled slots (store lock held)."""
        pooled = self.pool.reserved() if self.pool is not None else set()
        return {c.network.ip for c in self._active()} | pooled

    def _allocate_for_pool(self) -> str:
        assert self.pool is not None
        with self.store.lock:
            ip = addressing.allocate_ip(self._used_ips())
            self.pool.hold(ip)
            return ip

    def starting_ids(self) -> set[str]:
        with self.store.lock:
            return set(self._starting)

    def _op(self, cid: str) -> threading.Lock:
        with self.store.lock:
            return self._op_locks.setdefault(cid, threading.Lock())

    def op_lock(self, cid: str) -> threading.Lock:
        """The lock start and remove hold for cid: an operation that mounts the rootfs holds it too."""
        return self._op(cid)

    # create ----------------------------------------------------------------------------
    def create(self, name: str, spec: CreateSpec) -> Container:
        image = self.images.resolve(spec.image)
        spec.image_id = image.id
        # the image's labels are the container's too (its own win), as dockerd merges them
        spec.labels = {**((image.config.get("config") or {}).get("Labels") or {}), **spec.labels}
        cid = new_id()
        container = Container(cid, name or cid[:12], rfc3339(), spec)
        if self.networks is not None:
            self.networks.check_spec(spec)
        with self.store.lock:
            self.store.check_name(container.name)
            self._check_ports(container)
            bundle = self.store.bundle(cid)
            made: list[str] = []
            try:
                mountplan.expand(spec, image.config, self.store)
                made = mountplan.ensure_volumes(spec, self.volumes)
                for sub in ("upper", "work", "rootfs"):
                    (bundle / sub).mkdir(parents=True)
                self._write_files(container, image.config)
                self.store.add(container)
            except BaseException:
                rmtree(bundle)
                for volume in made:
                    self.volumes.remove(volume, [])
                raise
        if self.networks is not None:
            self.networks.joined(container)
        self.store.logfile(cid)
        self._emit(container, "create")
        return container

    def _emit(self, container: Container, action: str, **extra: str) -> None:
        """A container event with Docker's attributes: its labels, name and image."""
        self.events.emit("container", action, container.id,
                         **{**container.spec.labels, "name": container.name, "image": container.spec.image,
                            **extra})

    def _write_files(self, container: Container, image_config: dict[str, Any]) -> None:
        bundle = self.store.bundle(container.id)
        netns = self.network.netns_path(container.id) if container.spec.network_mode != "none" else None
        config = ocispec.build_config(container, image_config, bundle, bundle / "rootfs", netns,
                                      self.cgroups.container_path(container.id),
                                      mountplan.oci_mounts(container.spec, self.volumes))
        stdio.apply_terminal(config, container.spec)
        if not config["process"]["args"]:
            raise EngineError("No command specified", 400)
        # no fsync (10 ms under TCG): start() rewrites a config that a node crash left torn
        write_json(bundle / "config.json", config, durable=False)
        # no hostname in the config: the node's UTS namespace is shared (UTSMode host)
        (bundle / "hostname").write_text(f"{config.get('hostname') or socket.gethostname()}\n")
        (bundle / "hosts").write_text(addressing.render_hosts([]))
        try:
            host_resolv = self.resolv.read_text()
        except OSError:
            host_resolv = ""
        (bundle / "resolv.conf").write_text(dnsconf.render(addressing.resolv_conf(host_resolv), container.spec))

    # ports and addresses ---------------------------------------------------------------
    def _active(self, exclude: str = "") -> list[Container]:
        return [c for c in self.store.all() if (c.running or c.id in self._starting) and c.id != exclude]

    def _check_ports(self, container: Container) -> None:
        """409 when another running container or a node process holds a host port."""
        taken = {(p.host_port, p.proto): c for c in self._active(container.id) for p in c.spec.ports}
        container.spec.ports = hostports.assign(container.spec.ports, set(taken), self.network.port_in_use)
        seen: set[tuple[int, str]] = set()
        for port in container.spec.ports:
            key = (port.host_port, port.proto)
            if key in taken or key in seen:
                raise Conflict(f"Bind for {port.host_ip or '0.0.0.0'}:{port.host_port} failed: "
                               "port is already allocated")
            if self.network.port_in_use(port.host_port, port.proto, port.host_ip):
                raise Conflict(f"Bind for {port.host_ip or '0.0.0.0'}:{port.host_port} failed: "
                               "port is already in use by a process on the node")
            seen.add(key)

    def _rules(self) -> list[PortRule]:
        active = self._active()  # a user network's container publishes its address there
        ips = {c.id: c.network.ip or (self.networks.primary_ip(c) if self.networks else "") for c in active}
        return [PortRule(p.proto, p.host_port, ips[c.id], p.container_port, p.host_ip, c.id)
                for c in active if ips[c.id] for p in c.spec.ports]

    def refresh_network(self) -> None:
        """Port rules and every running container's /etc/hosts, from the records."""
        with self.store.lock:
            active = self._active()
            entries = [addressing.HostEntry(c.network.ip, c.name, c.id) for c in active]
            rules = self._rules()
        self.network.publish(rules)
        text = addressing.render_hosts(entries)
        for c in active:
            if self.networks is not None:
                text = self.networks.hosts_text(c, entries)
            # rewritten in place (same inode), so the container's bind mount sees it
            with contextlib.suppress(OSError), open(self.store.bundle(c.id) / "hosts", "w") as handle:
                handle.write(text)

    # start -----------------------------------------------------------------------------
    def start(self, ref: str, policy: bool = False) -> None:
        """A user's start, or (policy=True) the restart policy's once the back-off is over."""
        container = self.store.get(ref)
        if not policy:
            self.restarts.forget(container.id)  # a start during the back-off starts it now
        quiet = self.pool.starting() if self.pool is not None else contextlib.nullcontext()
        with quiet, self._op(container.id):
            if policy and not container.state.restarting:
                return  # stopped, killed or started by the user meanwhile
            if container.running:
                raise NotModified("container already started")
            with self.store.lock:
                if not policy:
                    container.state.restart_count = 0  # dockerd counts retries since the user's start
                self._check_ports(container)
                if container.spec.network_mode == "bridge":
                    slot = self.pool.take() if self.pool is not None else None
                    if slot is not None:
                        self._slots[container.id] = slot
                        container.network = NetworkState(slot.ip, slot.mac, self.network.gateway,
                                                         self.network.prefix, slot.veth)
                    else:
                        if self.pool is not None:
                            log.info("netns pool empty: wiring %s's network inline", container.name)
                        ip = addressing.allocate_ip(self._used_ips())
                        container.network = NetworkState(ip, "", self.network.gateway, self.network.prefix)
                self._starting.add(container.id)
            with DirWatch(self.store.bundle(container.id)) as watch:
                try:
                    self._launch(container)
                except BaseException as exc:
                    self._start_failed(container, exc)
                    raise
                finally:
                    with self.store.lock:
                        self._starting.discard(container.id)
                self._await_pid(container, watch)
        self.resume_health(container)  # once it runs: a probe needs the container's process

    def _start_failed(self, container: Container, exc: BaseException) -> None:
        """Record why a start failed, and remove an AutoRemove container, as dockerd does:
        `docker run --rm` waits for the removal after a failed start, and would wait forever."""
        with self.store.changed:
            container.state.error = str(exc)
            container.state.exit_code = 128
            if container.state.status == "restarting":  # a failed policy restart ends the policy's go
                container.state.status, container.state.restarting = "exited", False
            self.store.save(container)
        if container.spec.auto_remove:
            threading.Thread(target=self._auto_remove, args=(container.id,), daemon=True).start()

    def _launch(self, container: Container) -> None:
        cid, bundle = container.id, self.store.bundle(container.id)
        undo: list[Callable[[], None]] = []
        try:
            if container.network.ip:
                veth = container.network.veth
                undo.append(lambda: self.network.detach(cid, veth))
                slot = self._slots.pop(cid, None)
                if slot is not None and self._wiring is not None:
                    self._wiring.claim(slot.netns, cid)
                else:
                    container.network.mac = self.network.attach(cid, container.network.ip)
            if self.networks is not None:
                networks = self.networks
                undo.append(lambda: networks.stop(container))
                networks.start(container)
            procs = self.cgroups.prepare(cid)
            undo.append(lambda: self.cgroups.remove(cid))
            image = self.images.resolve(container.spec.image_id)
            if not self._config_readable(bundle):
                self._write_files(container, image.config)
            self.mounter.mount(self.images.layer_dirs(image), bundle / "upper", bundle / "work",
                               bundle / "rootfs")
            undo.append(lambda: self.mounter.unmount(bundle / "rootfs"))
            mountplan.prepare(container, bundle / "rootfs", self.volumes)
            self._resolve_user(container, image.config)
            check = health.to_check(health.effective(container.spec.healthcheck, health.from_image(image.config)))
            undo.append(self.refresh_network)
            self.refresh_network()
            shim = self.runtime.launch(cid, bundle, procs, container.spec.tty, container.spec.open_stdin)
        except BaseException:
            container.network = NetworkState()
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    log.exception("rollback step failed for %s", cid[:12])
            raise
        with self.store.lock:
            container.state = ContainerState(
                status="running", shim_pid=shim.pid, shim_start=shim.start, started_at=rfc3339(),
                exits=container.state.exits, restart_count=container.state.restart_count,
                health="starting" if check else "")
            # not fsynced: a node crash ends the shim too, and adopt() then reads the
            # record as stopped whichever version of it survived
            self.store.save(container, durable=False)
        self._volume_events(container, "mount")
        self._emit(container, "start")  # before the supervisor can see it die
        self.supervise(container)

    def resume_health(self, container: Container) -> None:
        """Probe a started or re-adopted running container (its Health so far is kept)."""
        if self.health is None or not container.running:
            return
        try:
            image_config = self.images.resolve(container.spec.image_id).config
        except EngineError:
            image_config = {}
        check = health.to_check(health.effective(container.spec.healthcheck, health.from_image(image_config)))
        if check is not None and not container.state.health:
            container.state.health = "starting"
        self.health.watch(container, check)

    def _volume_events(self, container: Container, action: str) -> None:
        for m in container.spec.mounts:
            if m.type != "volume":
                continue
            extra = {"destination": m.target, "read/write": str(not m.readonly).lower(),
                     "propagation": ""} if action == "mount" else {}
            self.events.emit("volume", action, m.source, container=container.id, driver="local", **extra)

    def _resolve_user(self, container: Container, image_config: dict[str, Any]) -> None:
        """process.user from the container's own /etc/passwd and /etc/group, now that its rootfs
        is mounted: Docker resolves User at each start too, so an edited passwd counts."""
        bundle = self.store.bundle(container.id)
        user = users.resolve(bundle / "rootfs", ocispec.user_spec(container.spec, image_config),
                             container.spec.options.get("GroupAdd") or [])
        config = read_json(bundle / "config.json")
        if config["process"].get("user") != user:
            config["process"]["user"] = user
            write_json(bundle / "config.json", config, durable=False)

    @staticmethod
    def _config_readable(bundle: Path) -> bool:
        try:
            read_json(bundle / "config.json")
        except (OSError, ValueError):
            return False
        return True

    def supervise(self, container: Container) -> None:
        cid = container.id
        fifos = self.runtime.fifos(self.store.bundle(cid))
        self.supervisor.watch(cid, container.state.shim_pid, fifos, self.store.logfile(cid),
                              lambda: self.on_exit(cid))

    def _await_pid(self, container: Container, watch: DirWatch) -> None:
        """Return once crun wrote the pid file; raise if the shim died before that.

        Sleeps on the bundle's inotify watch between looks; an exit (which the supervisor
        records) is noticed within EXIT_CHECK.
        """
        bundle, run = self.store.bundle(container.id), container.state.exits
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            pid = self.runtime.read_pid(bundle)
            with self.store.changed:
                if pid and container.state.exits == run:
                    # not saved: the record already says running, and an engine that
                    # re-adopts this container reads the pid from the bundle again
                    container.state.pid = pid
                    return
                if container.state.exits != run:
                    if pid:
                        return  # it ran and already finished
                    message = self.runtime.failure(bundle) or "the container exited before it started"
                    container.state.error = message
                    self.store.save(container)
                    raise EngineError(message, 400 if "not found" in message else 500)
            watch.wait(EXIT_CHECK)
        raise EngineError("timed out waiting for the runtime to start the container")

    # exit ------------------------------------------------------------------------------
    def on_exit(self, cid: str) -> None:
        """Called by the supervisor once the shim is gone and the logs are drained."""
        if not self.store.exists(cid):
            return
        container = self.store.get(cid)
        if self.health is not None:
            self.health.stop(cid)
        bundle = self.store.bundle(cid)
        # fetched now: once the exit is recorded, a remove() may drop the record and delete
        # the bundle, and fetching it then would create the log file again
        logfile = self.store.logfile(cid)
        code = self.runtime.exit_code(bundle)
        oom = self.cgroups.oom_killed(cid)
        self.runtime.reap(container.state.shim_pid)
        self.runtime.delete(cid)
        with self.store.lock:  # still "running" until cleaned up, so no start can interleave
            ip, veth = container.network.ip, container.network.veth
            container.network = NetworkState()
        steps: list[Callable[[], None]] = [
            lambda: self.network.detach(cid, veth) if ip else None,
            lambda: self.networks.stop(container) if self.networks is not None else None,
            lambda: self.mounter.unmount(bundle / "rootfs"),
            lambda: self.cgroups.remove(cid), self.refresh_network]
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("cleanup after exit of %s failed", cid[:12])
        with self.store.changed:
            state = container.state
            state.status = "exited"
            state.exit_code = 255 if code is None else code
            state.oom_killed, state.pid, state.finished_at = oom, 0, rfc3339()
            state.paused = False  # a frozen cgroup's processes can still be killed
            if code is None and not state.error:
                state.error = "the container's exit status was lost (engine or node restarted)"
            state.exits += 1
            again = restart.restart_after_exit(container.spec.restart, state)
            if again:
                state.restart_count += 1
                state.status, state.restarting = "restarting", True
                # held from now, so a stop that sees "restarting" can cancel it; armed after "die"
                delay = self.restarts.schedule(cid, time.time() - parse_rfc3339(state.started_at), armed=False)
            self.store.save(container)
        logfile.poke()
        self._volume_events(container, "unmount")
        self._emit(container, "die", exitCode=str(state.exit_code))
        if again:
            self.restarts.arm(cid)
            log.info("restarting %s in %.1f s (policy %s)", container.name, delay, container.spec.restart.name)
        elif container.spec.auto_remove:
            threading.Thread(target=self._auto_remove, args=(cid,), daemon=True).start()

    def _auto_remove(self, cid: str) -> None:
        with contextlib.suppress(EngineError):
            self.remove(cid, force=True, volumes=True)

    # stop, kill, wait, remove ----------------------------------------------------------
    def _policy_start(self, cid: str) -> None:
        """The back-off is over: start the container again, unless the user acted meanwhile."""
        try:
            self.start(cid, policy=True)
        except NotModified:
            pass
        except Exception as exc:  # recorded by _start_failed; the policy gives up, as dockerd's does
            log.warning("restart of %s failed: %s", cid[:12], exc)

    def _cancel_restart(self, container: Container) -> bool:
        """The user's stop, kill or remove ends a back-off; True if the container was waiting in one."""
        self.restarts.cancel(container.id)
        if container.state.status != "restarting" and not container.state.restarting:
            return False
        with self._op(container.id), self.store.changed:  # the op lock: a policy start in flight ends first
            state = container.state
            if state.status != "restarting" and not state.restarting:
                return False
            state.status, state.restarting, state.stopped_by_user = "exited", False, True
            if self.store.exists(container.id):
                self.store.save(container)
            return True

    def _after_start(self, container: Container) -> None:
        """Wait for a start in flight (a policy's, in the background) to have its pid to signal."""
        with self._op(container.id):
            pass

    def _stopped_by_user(self, container: Container) -> None:
        with self.store.changed:
            container.state.stopped_by_user = True
            self.store.save(container, durable=False)

    @staticmethod
    def stop_signal(container: Container) -> int:
        return parse_signal(container.spec.stop_signal, signal.SIGTERM)

    def kill(self, ref: str, sig: int = signal.SIGKILL) -> None:
        container = self.store.get(ref)
        if self._cancel_restart(container):
            self._emit(container, "kill", signal=str(sig))
            return
        self._after_start(container)
        if not container.running:
            raise Conflict(f"Container {container.id} is not running")
        if sig in (signal.SIGKILL, self.stop_signal(container)):
            self._stopped_by_user(container)  # a signal meant to end it: no policy restart
        self._emit(container, "kill", signal=str(sig))
        self._signal(container, sig)

    def _signal(self, container: Container, sig: int) -> None:
        self.runtime.kill(container.id, sig, container.state.pid, self.cgroups.container_path(container.id))

    def stop(self, ref: str, timeout: float | None = None) -> None:
        """StopSignal, then SIGKILL after the timeout (StopTimeout, else 10 s; -1 waits for ever)."""
        container = self.store.get(ref)
        if self._cancel_restart(container):
            self._emit(container, "stop")
            return
        self._after_start(container)
        if not container.running:
            raise NotModified("container already stopped")
        if timeout is None:
            timeout = float(container.spec.stop_timeout if container.spec.stop_timeout is not None else 10)
        self._stopped_by_user(container)
        if self.health is not None:
            self.health.stop(container.id)
        run, sig = container.state.exits, self.stop_signal(container)
        self._emit(container, "kill", signal=str(sig))
        with contextlib.suppress(Conflict):
            self._signal(container, sig)
        if container.state.paused:  # frozen, it would never see the signal: thaw it, as dockerd does
            with contextlib.suppress(EngineError):
                self._thaw(container)
        if not self._wait_exit(container, run, None if timeout < 0 else min(timeout, threading.TIMEOUT_MAX)):
            self._emit(container, "kill", signal=str(int(signal.SIGKILL)))
            with contextlib.suppress(Conflict):
                self._signal(container, signal.SIGKILL)
            self._wait_exit(container, run, 30)
        self._emit(container, "stop")

    def restart(self, ref: str, timeout: float | None = None) -> None:
        """docker restart: stop if running (or waiting to restart), then start."""
        container = self.store.get(ref)
        with contextlib.suppress(NotModified):
            self.stop(ref, timeout)
        self.start(ref)
        self._emit(container, "restart")

    def _wait_exit(self, container: Container, run: int, timeout: float | None) -> bool:
        with self.store.changed:
            return self.store.changed.wait_for(lambda: container.state.exits != run, timeout)

    def wait(self, container: Container, condition: str = "not-running",
             gone: Callable[[], bool] = lambda: False) -> Container:
        """Block as Docker's /wait does; `gone` lets a hung-up client end the wait."""
        run = container.state.exits

        def done() -> bool:
            if condition == "removed":
                return not self.store.exists(container.id)
            if condition == "next-exit":
                return container.state.exits != run
            if container.state.exits != run:
                return True  # it exited (a restart policy may already have started it again)
            return not container.running and container.state.status != "restarting" \
                and container.id not in self._starting

        with self.store.changed:
            while not done():
                self.store.changed.wait(1.0)
                if not done() and gone():
                    raise ClientGone()
        return container

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """volumes (rm -v, and --rm): its anonymous volumes go too, unless another container uses them."""
        container = self.store.get(ref)
        if self.health is not None and (force or not container.running):
            self.health.stop(container.id)  # no probe writes into the bundle while it goes
        if container.state.status == "restarting":
            if not force:
                raise Conflict(f"You cannot remove a restarting container {container.id}. "
                               "Stop the container before attempting removal or force remove")
            self._cancel_restart(container)
        if container.running or container.id in self.starting_ids():
            self._after_start(container)
        if container.running:
            if not force:
                raise Conflict(f"You cannot remove a running container {container.id}. "
                               "Stop the container before attempting removal or force remove")
            run = container.state.exits
            self._stopped_by_user(container)
            with contextlib.suppress(Conflict):
                self._signal(container, signal.SIGKILL)
            self._wait_exit(container, run, 30)
        with self._op(container.id):
            bundle = self.store.bundle(container.id)
            with contextlib.suppress(EngineError):
                self.mounter.unmount(bundle / "rootfs")
            self.cgroups.remove(container.id)
            if volumes:  # before the record goes: a wait for "removed" ends once it has
                self._remove_anonymous_volumes(container)
            self.store.drop(container.id)
            rmtree(bundle)
            if self.networks is not None:
                self.networks.forget(container.id)
        with self.store.lock:
            self._op_locks.pop(container.id, None)
        self.restarts.forget(container.id)
        if self.health is not None:
            self.health.stop(container.id)
        self._emit(container, "destroy")

    def _remove_anonymous_volumes(self, container: Container) -> None:
        with self.store.lock:
            others = [c for c in self.store.all() if c.id != container.id]
            for m in container.spec.mounts:
                if m.type == "volume" and m.anonymous and self.volumes.exists(m.source):
                    with contextlib.suppress(EngineError):
                        self.volumes.remove(m.source, mountplan.users_of(m.source, others))

    def ports_of(self, container: Container) -> list[PortBinding]:
        return container.spec.ports
