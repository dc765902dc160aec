"""Docker's default confinement: capabilities, /proc masking, devices and a seccomp deny-list."""

from __future__ import annotations

from typing import Any

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)

READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Syscalls Docker's default profile never allows to an unprivileged container.
BLOCKED_SYSCALLS = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
    "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
    "set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon", "_sysctl",
    "sysfs", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86",
    "vm86old",
)

EPERM = 1


def capabilities() -> dict[str, list[str]]:
    caps = list(DEFAULT_CAPS)
    return {"bounding": caps, "effective": caps, "permitted": caps}


def seccomp_profile() -> dict[str, Any]:
    """Allow by default, EPERM for the blocked list (compact, unlike Docker's allow-list)."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": list(BLOCKED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
        ],
    }


def _char(major: int, minor: int | None) -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": True, "type": "c", "major": major, "access": "rwm"}
    if minor is not None:
        rule["minor"] = minor
    return rule


def device_rules() -> list[dict[str, Any]]:
    """Deny every device, then allow the ones every container gets (null, zero, tty, pts...)."""
    return [
        {"allow": False, "access": "rwm"},
        *(_char(1, minor) for minor in (3, 5, 7, 8, 9)),
        *(_char(5, minor) for minor in (0, 1, 2)),
        _char(136, None),
    ]
