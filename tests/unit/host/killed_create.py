"""`lab create` with the fakes, SIGKILLed as it starts node2: what a crash mid-create leaves.

    python -m tests.unit.host.killed_create LABFILE DOMAINS_JSON IMAGE_DIR

The fake hypervisor keeps its domains in DOMAINS_JSON, so they outlive this process as a
real hypervisor's do.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from provisioner.lab.create import CreateOptions, create
from provisioner.progress import SilentReporter

from .conftest import base_image, seams_for
from .fakes import FakeHypervisor, FakeNodes


def main(labfile: str, store: str, image_dir: str) -> None:
    hypervisor = FakeHypervisor(Path(store))
    hypervisor.on("start", lambda: os.kill(os.getpid(), signal.SIGKILL), name="lab-crash-node2")
    seams = seams_for(hypervisor, FakeNodes(), base_image(Path(image_dir)))
    create(labfile, CreateOptions(connect="fake:///lab", parallel=1), SilentReporter(), seams)


if __name__ == "__main__":
    main(*sys.argv[1:4])
