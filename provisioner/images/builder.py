"""Build a guest image offline from Debian packages, atomically, into the cache."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ..errors import ImageBuildError
from ..hosttools import require_tools
from .kernel import build_tiny_initrd, extract_vmlinux
from .recipe import IMAGE_FILES_DIR, Recipe
from .store import BUILD_PREFIX, Image, ImageStore

Report = Callable[[str], None]


def mmdebstrap_command(recipe: Recipe, rootfs: Path) -> list[str]:
    """mmdebstrap reads the host's own apt sources: no mirror is ever named here."""
    command = [
        "mmdebstrap", "--variant=apt", "--mode=root", "--format=directory",
        "--include=" + ",".join(recipe.packages),
    ]
    command += [f"--dpkgopt=path-exclude={pattern}" for pattern in recipe.dpkg_excludes]
    command += [f"--customize-hook={hook}" for hook in customize_hooks(recipe)]
    command += [recipe.suite, str(rootfs)]
    return command


def customize_hooks(recipe: Recipe) -> list[str]:
    hooks: list[str] = []
    for guest_path, source in recipe.files:
        parent = shlex.quote(str(Path(guest_path).parent))
        hooks.append(f'mkdir -p "$1"{parent}')
        hooks.append(f"upload {IMAGE_FILES_DIR / source} {guest_path}")
    for guest_path, source in recipe.files:
        if os.access(IMAGE_FILES_DIR / source, os.X_OK):
            hooks.append(f'chmod 0755 "$1"{shlex.quote(guest_path)}')
    if recipe.masked_units:
        hooks.append('chroot "$1" systemctl mask --quiet ' + " ".join(recipe.masked_units))
    if recipe.enabled_units:
        hooks.append('chroot "$1" systemctl enable --quiet ' + " ".join(recipe.enabled_units))
    # A fresh identity per guest, host keys from the seed, and no package sources.
    hooks.append(': > "$1/etc/machine-id"')
    hooks.append('rm -f "$1"/etc/ssh/ssh_host_*')
    hooks.append('rm -f "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/*')
    return hooks


class ImageBuilder:
    """Builds into a private temporary dir, then renames it into place."""

    def __init__(self, store: ImageStore, report: Report = lambda phase: None) -> None:
        self.store = store
        self.report = report

    def build(self, recipe: Recipe, force: bool = False) -> Image:
        cached = self.store.find(recipe)
        if cached is not None and not force:
            return cached
        require_tools("mmdebstrap", "mkfs.ext4", "qemu-img", "cpio")
        self.store.root.mkdir(parents=True, exist_ok=True)
        self.store.sweep_abandoned_builds()
        work = self.store.root / f"{BUILD_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        try:
            self._build_in(recipe, work)
            if cached is not None:
                self.store.remove(cached)
            final = self.store.path_for(recipe)
            work.rename(final)
            return Image.load(final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    def _build_in(self, recipe: Recipe, work: Path) -> Image:
        started = time.monotonic()
        rootfs = work / "rootfs"
        log = work / "build.log"
        self.report("installing Debian packages (mmdebstrap)")
        self._run(mmdebstrap_command(recipe, rootfs), log)
        self.report("extracting the kernel")
        kernel, initrd = self._boot_files(recipe, rootfs, work)
        self.report("making the ext4 root and the qcow2")
        raw = work / "base.raw"
        self._run(["truncate", "-s", recipe.disk_size, str(raw)], log)
        self._run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", str(rootfs), str(raw)], log)
        self._run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "base.qcow2")], log)
        raw.unlink()
        shutil.rmtree(rootfs)
        image = Image(
            path=work, name=recipe.name, key=recipe.cache_key(), kernel=kernel, initrd=initrd,
            kernel_args=list(recipe.kernel_args), boot=recipe.boot,
            build_seconds=round(time.monotonic() - started, 1), created=time.time(),
        )
        image.save()
        return image

    def _boot_files(self, recipe: Recipe, rootfs: Path, work: Path) -> tuple[str, str]:
        boot = rootfs / "boot"
        vmlinuz = max(boot.glob("vmlinuz-*"), default=None)
        if vmlinuz is None:
            raise ImageBuildError(f"{boot}: the image has no kernel")
        if recipe.boot == "pvh":
            extract_vmlinux(vmlinuz, work / "vmlinux")
            build_tiny_initrd(rootfs, recipe.initrd_modules, work / "initrd")
            return "vmlinux", "initrd"
        version = vmlinuz.name.removeprefix("vmlinuz-")
        shutil.copy2(vmlinuz, work / "vmlinuz")
        shutil.copy2(boot / f"initrd.img-{version}", work / "initrd")
        return "vmlinuz", "initrd"

    @staticmethod
    def _run(command: list[str], log: Path) -> None:
        with log.open("a") as out:
            out.write(f"$ {shlex.join(command)}\n")
            out.flush()
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise ImageBuildError(
                f"{command[0]} failed (exit {done.returncode}): " + " | ".join(tail)
            )

