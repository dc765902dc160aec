"""Where `lab` keeps its state, its cache and its shipped files."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

import platformdirs


def templates_dir() -> Path:
    return _shipped("templates", "templates")


def labs_dir() -> Path:
    return _shipped("labs", "labs")


def guest_agent_dir() -> Path:
    """The guest agent's source tree: labagent/ is what its deploy archive holds."""
    return _shipped("guest-agent", "guest_agent")


@cache
def _shipped(folder: str, package: str) -> Path:
    """A top-level folder of the repository, as a wheel carries it or as a checkout has it.

    A wheel installs FOLDER as provisioner/shipped/PACKAGE (setup.py). An editable install
    from a checkout has no such directory: the folder is next to the package, where the
    repository's layout keeps it.
    """
    packaged = resources.files("provisioner").joinpath("shipped", package)
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / folder


def lab_home() -> Path:
    """LAB_HOME overrides everything, so tests and CI can use a private tree."""
    override = os.environ.get("LAB_HOME")
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_state_dir("lab"))


def state_dir() -> Path:
    return lab_home() / "labs"


def cache_dir() -> Path:
    """LAB_CACHE lets several LAB_HOMEs (tests, CI) share the content-addressed images."""
    if os.environ.get("LAB_CACHE"):
        return Path(os.environ["LAB_CACHE"]).expanduser().resolve()
    override = os.environ.get("LAB_HOME")
    if override:
        return Path(override).expanduser().resolve() / "cache"
    return Path(platformdirs.user_cache_dir("lab"))


def images_dir() -> Path:
    return cache_dir() / "images"
