"""Direct-boot artefacts: the uncompressed kernel for PVH, and a tiny busybox initrd."""

from __future__ import annotations

import lzma
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from ..errors import ImageBuildError
from .recipe import IMAGE_FILES_DIR

XZ_MAGIC = b"\xfd7zXZ\x00"
PT_LOAD = 1


def extract_vmlinux(vmlinuz: Path, vmlinux: Path) -> None:
    """Decompress the ELF kernel out of a bzImage, so QEMU can boot it through PVH."""
    data = vmlinuz.read_bytes()
    start = data.find(XZ_MAGIC)
    while start != -1:
        decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            payload = decompressor.decompress(data[start:])
        except lzma.LZMAError:
            start = data.find(XZ_MAGIC, start + 1)
            continue
        if payload.startswith(b"\x7fELF"):
            vmlinux.write_bytes(without_zero_tails(payload))
            return
        start = data.find(XZ_MAGIC, start + 1)
    raise ImageBuildError(f"{vmlinuz}: no xz-compressed ELF kernel found inside")


def without_zero_tails(elf: bytes) -> bytes:
    """Each loadable segment's trailing zeros become memory-only (p_filesz < p_memsz).

    QEMU keeps the kernel file mapped for as long as the guest runs, and every page it
    copied from counts in its RSS. Debian's kernel stores its .bss and .init.scratch as
    23 MiB of zeros in the file; the loader zero-fills up to p_memsz anyway, so the guest
    sees the same memory and QEMU never touches those pages.
    """
    if elf[:5] != b"\x7fELF\x02" or elf[5] != 1:
        raise ImageBuildError("the kernel is not a little-endian 64-bit ELF")
    image = bytearray(elf)
    (table,) = struct.unpack_from("<Q", image, 0x20)
    entry_size, entries = struct.unpack_from("<HH", image, 0x36)
    for index in range(entries):
        header = table + index * entry_size
        (segment_type,) = struct.unpack_from("<I", image, header)
        (offset,) = struct.unpack_from("<Q", image, header + 8)
        (file_size,) = struct.unpack_from("<Q", image, header + 32)
        if segment_type == PT_LOAD and file_size:
            content = image[offset:offset + file_size]
            struct.pack_into("<Q", image, header + 32, len(content.rstrip(b"\0")))
    return bytes(image)


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep maps a module's path to the paths of the modules it needs."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        module, _, needs = line.partition(":")
        deps[module.strip()] = needs.split()
    return deps


def module_name(path: str) -> str:
    base = Path(path).name
    for suffix in (".xz", ".zst", ".gz"):
        base = base.removesuffix(suffix)
    return base.removesuffix(".ko").replace("-", "_")


def load_order(wanted: tuple[str, ...], modules_dep: str) -> list[str]:
    """Module paths to insmod, dependencies first; built-in modules are skipped."""
    deps = parse_modules_dep(modules_dep)
    by_name = {module_name(path): path for path in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for needed in reversed(deps.get(path, [])):
            visit(needed)
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace("-", "_"))
        if path is not None:
            visit(path)
    return order


def build_tiny_initrd(rootfs: Path, modules: tuple[str, ...], output: Path) -> None:
    """A cpio of busybox, the init script and a handful of .ko files."""
    kernel_dirs = sorted((rootfs / "lib/modules").iterdir())
    if not kernel_dirs:
        raise ImageBuildError(f"{rootfs}: no kernel modules found")
    kernel_dir = kernel_dirs[-1]
    order = load_order(modules, (kernel_dir / "modules.dep").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        (staging / "bin").mkdir()
        (staging / "modules").mkdir()
        shutil.copy2(rootfs / "bin/busybox", staging / "bin/busybox")
        shutil.copy2(IMAGE_FILES_DIR / "initrd-init", staging / "init")
        (staging / "init").chmod(0o755)
        names = []
        for path in order:
            name = Path(path).name
            shutil.copy2(kernel_dir / path, staging / "modules" / name)
            names.append(name)
        (staging / "modules.order").write_text("\n".join(names) + "\n")
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))
        with output.open("wb") as out:
            subprocess.run(
                ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
                input="\n".join(files).encode(), cwd=staging, stdout=out, check=True,
            )
