"""libvirt: the connection, the acceleration choice, domain XML and the domain lifecycle."""

import os

from ..paths import lab_home

# libvirt reads this when the module is imported and otherwise logs to stderr.
lab_home().mkdir(parents=True, exist_ok=True)
os.environ.setdefault("LIBVIRT_LOG_OUTPUTS", f"3:file:{lab_home() / 'libvirt.log'}")
