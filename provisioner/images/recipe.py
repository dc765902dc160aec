"""Image recipes as data: what goes into a guest image and how it boots.

The builder turns a recipe into mmdebstrap hooks. Every field feeds the cache key, so
changing the recipe (or a file it installs) builds a new image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from ..errors import UserInputError
from ..paths import templates_dir

IMAGE_FILES_DIR = templates_dir() / "image"

# What every guest needs, and what the guest agent will need (PLATFORM-NOTES).
BASE_PACKAGES = (
    "systemd-sysv", "udev", "dbus", "kmod", "e2fsprogs", "linux-image-amd64",
    "cloud-init", "openssh-server", "python3", "sudo", "iproute2", "iputils-ping",
    "netbase", "procps", "ca-certificates",
    "crun", "busybox-static", "nftables", "python3-nftables", "python3-pyroute2", "socat",
)

DPKG_EXCLUDES = (
    "/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/lib/modules/*/kernel/drivers/gpu/*", "/usr/lib/modules/*/kernel/drivers/media/*",
    "/usr/lib/modules/*/kernel/drivers/net/wireless/*", "/usr/lib/modules/*/kernel/sound/*",
    "/usr/lib/modules/*/kernel/drivers/infiniband/*",
    "/lib/modules/*/kernel/drivers/gpu/*", "/lib/modules/*/kernel/drivers/media/*",
    "/lib/modules/*/kernel/drivers/net/wireless/*", "/lib/modules/*/kernel/sound/*",
    "/lib/modules/*/kernel/drivers/infiniband/*",
)

# Units no lab guest needs: apt's timers, always.
COMMON_MASKS = ("apt-daily.timer", "apt-daily-upgrade.timer")

# The boot-time levers measured in PLATFORM-NOTES ("Boot speed under TCG").
FAST_MASKS = (
    "cloud-init-local.service", "cloud-config.service", "cloud-final.service", "cloud-init-hotplugd.socket",
    "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer", "dpkg-db-backup.timer",
    "logrotate.timer", "systemd-tmpfiles-clean.timer",
    "getty@.service", "serial-getty@.service", "getty.target",
    "systemd-pstore.service",
    "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "dev-hugepages.mount",
    "dev-mqueue.mount", "sys-fs-fuse-connections.mount", "sys-kernel-config.mount",
    "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "modprobe@.service",
    "systemd-journal-flush.service", "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service", "systemd-udev-settle.service",
    "systemd-networkd-wait-online.service",
)

# Drivers the tiny initrd loads to reach an ext4 root on virtio-blk (dependencies follow).
FAST_INITRD_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")

COMMON_KERNEL_ARGS = ("root=LABEL=rootfs", "ro", "console=ttyS0", "net.ifnames=0")
FAST_KERNEL_ARGS = (
    "quiet", "loglevel=3", "systemd.show_status=0", "mitigations=off", "tsc=reliable",
    "no_timer_check", "audit=0", "i8042.noaux", "nowatchdog", "norandmaps", "fsck.mode=skip",
)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides an image's bytes and how a guest boots from it."""

    name: str
    suite: str
    packages: tuple[str, ...]
    masked_units: tuple[str, ...]
    enabled_units: tuple[str, ...]
    # (path in the guest, file under templates/image/)
    files: tuple[tuple[str, str], ...]
    kernel_args: tuple[str, ...]
    # "pvh": uncompressed vmlinux and a tiny busybox initrd; "stock": Debian's own.
    boot: str
    initrd_modules: tuple[str, ...] = ()
    disk_size: str = "4G"
    dpkg_excludes: tuple[str, ...] = DPKG_EXCLUDES
    builder_version: int = 2  # 2: vmlinux segments keep their zero tails in memory only

    def cache_key(self) -> str:
        """A hash of the recipe and of the content of every file it installs."""
        payload = asdict(self)
        payload["file_contents"] = {
            source: (IMAGE_FILES_DIR / source).read_text() for _, source in self.files
        }
        payload["initrd_init"] = (IMAGE_FILES_DIR / "initrd-init").read_text()
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


COMMON_FILES = (
    ("/etc/fstab", "fstab"),
    ("/etc/cloud/cloud.cfg.d/90-lab.cfg", "cloud-lab.cfg"),
    ("/etc/ssh/sshd_config.d/lab.conf", "sshd-lab.conf"),
)

FAST = Recipe(
    name="debian-12",
    suite="bookworm",
    packages=BASE_PACKAGES,
    masked_units=COMMON_MASKS + FAST_MASKS,
    enabled_units=("systemd-networkd.service",),
    files=COMMON_FILES + (
        ("/etc/cloud/cloud.cfg.d/91-lab-fast.cfg", "cloud-lab-fast.cfg"),
        ("/etc/cloud/ds-identify.cfg", "ds-identify.cfg"),
        ("/etc/systemd/network/99-lab-eth0.network", "eth0.network"),
        ("/etc/systemd/journald.conf.d/lab.conf", "journald.conf"),
        ("/etc/systemd/system/cloud-init.service.d/lab.conf", "cloud-init-dropin.conf"),
        ("/etc/systemd/system/ssh.service.d/lab.conf", "ssh-dropin.conf"),
        ("/usr/local/libexec/lab-cloud-stages", "lab-cloud-stages"),
    ),
    kernel_args=COMMON_KERNEL_ARGS + FAST_KERNEL_ARGS,
    boot="pvh",
    initrd_modules=FAST_INITRD_MODULES,
)

STOCK = Recipe(
    name="debian-12-stock",
    suite="bookworm",
    packages=BASE_PACKAGES + ("ifupdown", "isc-dhcp-client"),
    masked_units=COMMON_MASKS,
    enabled_units=(),
    files=COMMON_FILES,
    kernel_args=COMMON_KERNEL_ARGS,
    boot="stock",
)

RECIPES = {recipe.name: recipe for recipe in (FAST, STOCK)}
DEFAULT_IMAGE = FAST.name


def recipe_named(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise UserInputError(f"unknown image {name!r} (known: {known})") from None
