"""The QEMU capabilities cache that labs share, so only the first lab probes QEMU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioner.hypervisor import capabilities_cache


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))


def probed(root: Path, name: str, text: str) -> Path:
    path = root / capabilities_cache.ROOT_SUBDIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_new_root_starts_with_what_an_earlier_lab_probed(tmp_path: Path) -> None:
    probed(tmp_path / "lab-a", "qemu.xml", "<qemuCaps>a</qemuCaps>")
    capabilities_cache.keep(tmp_path / "lab-a")

    capabilities_cache.seed(tmp_path / "lab-b")

    seeded = tmp_path / "lab-b" / capabilities_cache.ROOT_SUBDIR / "qemu.xml"
    assert seeded.read_text() == "<qemuCaps>a</qemuCaps>"


def test_seeding_never_overwrites_a_roots_own_probe(tmp_path: Path) -> None:
    probed(tmp_path / "lab-a", "qemu.xml", "old")
    capabilities_cache.keep(tmp_path / "lab-a")
    own = probed(tmp_path / "lab-b", "qemu.xml", "fresh")

    capabilities_cache.seed(tmp_path / "lab-b")

    assert own.read_text() == "fresh"


def test_a_newer_probe_replaces_the_shared_copy_and_an_older_one_does_not(tmp_path: Path) -> None:
    first = probed(tmp_path / "lab-a", "qemu.xml", "first")
    capabilities_cache.keep(tmp_path / "lab-a")
    newer = probed(tmp_path / "lab-b", "qemu.xml", "reprobed")
    os.utime(newer, (first.stat().st_mtime + 10, first.stat().st_mtime + 10))
    capabilities_cache.keep(tmp_path / "lab-b")
    older = probed(tmp_path / "lab-c", "qemu.xml", "stale")
    os.utime(older, (first.stat().st_mtime - 10, first.stat().st_mtime - 10))
    capabilities_cache.keep(tmp_path / "lab-c")

    assert (capabilities_cache.shared_dir() / "qemu.xml").read_text() == "reprobed"
    assert not list(capabilities_cache.shared_dir().glob("*.partial"))


def test_nothing_to_share_is_not_an_error(tmp_path: Path) -> None:
    capabilities_cache.seed(tmp_path / "lab-a")
    capabilities_cache.keep(tmp_path / "lab-a")
    assert not capabilities_cache.shared_dir().exists()
