"""Image recipes, the cache key, the atomic store, and the tiny initrd's module order."""

from __future__ import annotations

import json
import lzma
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from provisioner.errors import ImageBuildError, UserInputError
from provisioner.images import recipe as recipes
from provisioner.images.builder import customize_hooks, mmdebstrap_command
from provisioner.images.kernel import extract_vmlinux, load_order, without_zero_tails
from provisioner.images.store import BUILD_PREFIX, METADATA, Image, ImageStore


def test_cache_key_is_stable_and_changes_with_the_recipe() -> None:
    key = recipes.FAST.cache_key()
    assert key == recipes.FAST.cache_key()
    assert replace(recipes.FAST, packages=(*recipes.FAST.packages, "vim")).cache_key() != key
    assert replace(recipes.FAST, masked_units=()).cache_key() != key
    assert replace(recipes.FAST, suite="trixie").cache_key() != key
    assert recipes.STOCK.cache_key() != key


def test_cache_key_follows_the_content_of_installed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for source in [s for _, s in recipes.FAST.files] + ["initrd-init"]:
        (tmp_path / source).write_text((recipes.IMAGE_FILES_DIR / source).read_text())
    monkeypatch.setattr(recipes, "IMAGE_FILES_DIR", tmp_path)
    before = recipes.FAST.cache_key()
    (tmp_path / "fstab").write_text("changed\n")
    assert recipes.FAST.cache_key() != before


def test_mmdebstrap_uses_the_hosts_sources_and_the_recipes_hooks(tmp_path: Path) -> None:
    command = mmdebstrap_command(recipes.FAST, tmp_path / "rootfs")
    assert command[-2:] == ["bookworm", str(tmp_path / "rootfs")]  # no mirror argument
    include = next(arg for arg in command if arg.startswith("--include="))
    for package in ("crun", "busybox-static", "python3-nftables", "python3-pyroute2", "socat"):
        assert package in include.split("=")[1].split(",")
    assert "ifupdown" not in include
    hooks = customize_hooks(recipes.FAST)
    assert any("systemctl mask" in hook and "cloud-init-local.service" in hook for hook in hooks)
    assert any(hook.startswith("upload ") and hook.endswith(" /etc/fstab") for hook in hooks)
    assert 'rm -f "$1"/etc/ssh/ssh_host_*' in hooks


def test_stock_recipe_keeps_ifupdown_and_debians_boot() -> None:
    assert "ifupdown" in recipes.STOCK.packages and recipes.STOCK.boot == "stock"
    assert "cloud-init-local.service" not in recipes.STOCK.masked_units


def test_unknown_image_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="unknown image 'nope'"):
        recipes.recipe_named("nope")


MODULES_DEP = """kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
"""


def test_initrd_modules_load_dependencies_first_and_skip_builtins() -> None:
    order = load_order(("virtio_blk", "ext4", "crc32c_generic"), MODULES_DEP)
    names = [Path(path).name for path in order]
    assert names.index("virtio_ring.ko") < names.index("virtio.ko") < names.index("virtio_blk.ko")
    assert names.index("jbd2.ko") < names.index("ext4.ko")
    assert len(names) == len(set(names)) == 7  # crc32c_generic is absent: built in


def fake_kernel(segments: list[tuple[bytes, int]]) -> bytes:
    """A 64-bit little-endian ELF with one PT_LOAD per (file content, memory size)."""
    header_size, entry_size = 64, 56
    table = bytearray()
    body = bytearray()
    offset = header_size + entry_size * len(segments)
    for content, memory_size in segments:
        table += struct.pack("<IIQQQQQQ", 1, 7, offset + len(body), 0, 0, len(content), memory_size, 16)
        body += content
    header = bytearray(b"\x7fELF\x02\x01\x01" + bytes(9))
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, header_size, 0, 0, header_size,
                          entry_size, len(segments), 0, 0, 0)
    return bytes(header + table + body)


def file_sizes(elf: bytes) -> list[tuple[int, int]]:
    (count,) = struct.unpack_from("<H", elf, 0x38)
    return [struct.unpack_from("<QQ", elf, 64 + 56 * index + 32) for index in range(count)]


def test_vmlinux_is_found_inside_an_xz_bzimage(tmp_path: Path) -> None:
    elf = fake_kernel([(bytes(range(1, 256)) * 8, 2040)])
    bzimage = tmp_path / "vmlinuz"
    bzimage.write_bytes(b"MZ setup code" + lzma.compress(b"decoy", format=lzma.FORMAT_XZ)[:20]
                        + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"trailer")
    extract_vmlinux(bzimage, tmp_path / "vmlinux")
    assert (tmp_path / "vmlinux").read_bytes() == elf


def test_a_segments_trailing_zeros_stay_in_memory_but_leave_the_file() -> None:
    code = b"\x90" * 100 + b"\0" * 3 + b"\xc3"
    data_then_bss = b"data" + b"\0" * 4000
    elf = fake_kernel([(code, len(code)), (data_then_bss, 8192), (b"\0" * 64, 64)])

    trimmed = without_zero_tails(elf)

    assert file_sizes(trimmed) == [(len(code), len(code)), (4, 8192), (0, 64)]
    body = 64 + 56 * 3
    assert trimmed[body:] == elf[body:] and trimmed[:64] == elf[:64]  # only p_filesz changed


def test_a_kernel_that_is_not_elf64_is_refused() -> None:
    with pytest.raises(ImageBuildError):
        without_zero_tails(b"\x7fELF\x01\x01" + bytes(100))


def fake_image(store: ImageStore, recipe: recipes.Recipe) -> Path:
    path = store.path_for(recipe)
    path.mkdir(parents=True)
    Image(path, recipe.name, recipe.cache_key(), "vmlinux", "initrd", [], "pvh", 1.0, 0.0).save()
    return path


def test_store_finds_only_complete_images_and_removes_by_name(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    assert store.find(recipes.FAST) is None
    half = store.path_for(recipes.FAST)
    half.mkdir()
    assert store.find(recipes.FAST) is None  # no image.json yet: not an image
    half.rmdir()
    fake_image(store, recipes.FAST)
    found = store.find(recipes.FAST)
    assert found is not None and json.loads((found.path / METADATA).read_text())["name"] == "debian-12"
    assert [image.name for image in store.images()] == ["debian-12"]
    assert store.remove_named("debian-12") == 1
    assert store.images() == []
    with pytest.raises(UserInputError):
        store.remove_named("debian-12")


def test_abandoned_builds_are_swept(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    dead = tmp_path / f"{BUILD_PREFIX}999999999-abcd"
    dead.mkdir()
    store.sweep_abandoned_builds()
    assert not dead.exists()
