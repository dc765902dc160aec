"""Every test run gets a private, short LAB_HOME; built images are shared through LAB_CACHE."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest


@pytest.fixture(scope="session", autouse=True)
def private_lab_home() -> Iterator[Path]:
    # Short on purpose: QEMU's monitor socket lives under it (108-byte limit).
    home = Path(tempfile.mkdtemp(prefix="lab-t-", dir="/tmp"))
    saved = {name: os.environ.get(name) for name in ("LAB_HOME", "LAB_CACHE")}
    os.environ["LAB_HOME"] = str(home)
    os.environ.setdefault("LAB_CACHE", saved["LAB_CACHE"] or platformdirs.user_cache_dir("lab"))
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(home, ignore_errors=True)
