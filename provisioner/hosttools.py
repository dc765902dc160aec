"""Host programs `lab` runs, checked up front so a missing one is a clear error."""

from __future__ import annotations

import shutil

from .errors import MissingToolError

INSTALL_HINT = "install it with the README's set-up command"


def require_tools(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None and shutil.which(name, path="/usr/sbin:/sbin") is None:
            raise MissingToolError(f"host tool {name!r} not found on PATH; {INSTALL_HINT}")
