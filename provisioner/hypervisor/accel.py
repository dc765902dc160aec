"""Choose KVM only where it really works; otherwise TCG with a sized translation cache.

/dev/kvm can open and still hang a stock guest (a paravirtualised host KVM): only trust it
when the CPU also advertises hardware virtualisation (vmx or svm).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserInputError

TB_CACHE_MIB = 128  # PLATFORM-NOTES: 64 is slower, 256 costs 130 MB for nothing
CHOICES = ("auto", "kvm", "tcg")


@dataclass(frozen=True)
class Acceleration:
    name: str
    domain_type: str
    tb_cache_mib: int | None
    reason: str


TCG = Acceleration("tcg", "qemu", TB_CACHE_MIB, "")
KVM = Acceleration("kvm", "kvm", None, "")


def cpu_has_virtualisation(cpuinfo: str) -> bool:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = line.partition(":")[2].split()
            return "vmx" in flags or "svm" in flags
    return False


def kvm_usable(cpuinfo_path: Path = Path("/proc/cpuinfo"), device: Path = Path("/dev/kvm")) -> str:
    """Returns an empty string when KVM is usable, otherwise why it is not."""
    if not device.exists():
        return f"{device} does not exist"
    if not os.access(device, os.R_OK | os.W_OK):
        return f"{device} is not readable and writable by this user"
    if not cpu_has_virtualisation(cpuinfo_path.read_text()):
        return "the CPU shows no vmx/svm flag, so this KVM cannot run a stock guest kernel"
    return ""


def choose(requested: str = "auto", why_not_kvm: str | None = None) -> Acceleration:
    if requested not in CHOICES:
        raise UserInputError(f"--accel must be one of {', '.join(CHOICES)}, not {requested!r}")
    if requested == "tcg":
        return Acceleration("tcg", "qemu", TB_CACHE_MIB, "forced with --accel tcg")
    if requested == "kvm":
        return Acceleration("kvm", "kvm", None, "forced with --accel kvm")
    problem = kvm_usable() if why_not_kvm is None else why_not_kvm
    if problem:
        return Acceleration("tcg", "qemu", TB_CACHE_MIB, f"KVM not used: {problem}")
    return Acceleration("kvm", "kvm", None, "KVM works on this host")
