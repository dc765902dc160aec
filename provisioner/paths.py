"""Where `lab` keeps its state, its cache and its shipped files."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
TEMPLATES_DIR = PROJECT_DIR / "templates"
LABS_DIR = PROJECT_DIR / "labs"
GUEST_AGENT_DIR = PROJECT_DIR / "guest-agent"


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
