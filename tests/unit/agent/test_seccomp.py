"""The seccomp allow-list: its OCI shape, what it refuses, and what ordinary programs need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from labagent.containers import ocispec, security
from labagent.containers.model import Container, CreateSpec

EPERM, ENOSYS = 1, 38
OPS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ"}
ACTIONS = {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"}
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x10000000, 0x40000000, 0x20000000
# glibc's pthread_create and fork, as clone flags
THREAD_FLAGS = 0x3D0F00  # VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
FORK_FLAGS = 0x1200011  # CHILD_SETTID|CHILD_CLEARTID|SIGCHLD


def _holds(arg: dict[str, Any], args: list[int]) -> bool:
    value, two, have = arg["value"], arg.get("valueTwo", 0), args[arg["index"]]
    return {"SCMP_CMP_NE": have != value, "SCMP_CMP_EQ": have == value, "SCMP_CMP_LT": have < value,
            "SCMP_CMP_LE": have <= value, "SCMP_CMP_GT": have > value, "SCMP_CMP_GE": have >= value,
            "SCMP_CMP_MASKED_EQ": have & value == two}[arg["op"]]


def verdict(profile: dict[str, Any], name: str, *args: int) -> str | int:
    """What libseccomp's filter answers: "allow", or the errno returned."""
    padded = [*args, *[0] * (6 - len(args))]
    errnos = []
    for rule in profile["syscalls"]:
        if name in rule["names"] and all(_holds(a, padded) for a in rule.get("args", [])):
            if rule["action"] == "SCMP_ACT_ALLOW":
                return "allow"
            errnos.append(rule.get("errnoRet", EPERM))
    return errnos[0] if errnos else profile["defaultErrnoRet"]


@pytest.fixture
def profile() -> dict[str, Any]:
    return security.seccomp_profile(security.DEFAULT_CAPS, "x86_64")


def test_the_profile_has_the_oci_shape_crun_reads(profile: dict[str, Any]) -> None:
    assert set(profile) == {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
    assert (profile["defaultAction"], profile["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", EPERM)
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    for rule in profile["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}, rule
        assert rule["names"] and all(isinstance(n, str) and n.isidentifier() for n in rule["names"])
        assert rule["action"] in ACTIONS
        for arg in rule.get("args", []):
            assert set(arg) <= {"index", "value", "valueTwo", "op"} and arg["op"] in OPS
            assert 0 <= arg["index"] < 6 and 0 <= arg["value"] < 2**64
    allowed = [n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r
               for n in r["names"]]
    assert len(allowed) == len(set(allowed)), "a syscall is listed twice"


def test_the_data_file_only_conditions_on_caps_a_container_can_hold() -> None:
    data = security._seccomp_data()
    for rule in data["syscalls"]:
        assert set(rule.get("caps", ())) <= set(security.DEFAULT_CAPS), rule["names"]
        assert set(rule) <= {"names", "action", "errnoRet", "args", "caps", "machines", "comment"}


@pytest.mark.parametrize("name, args", [
    ("read", ()), ("write", ()), ("openat", ()), ("close", ()), ("execve", ()), ("wait4", ()),
    ("mmap", ()), ("mprotect", ()), ("munmap", ()), ("brk", ()), ("futex", ()), ("rt_sigaction", ()),
    ("rt_sigprocmask", ()), ("rt_sigreturn", ()), ("exit_group", ()), ("newfstatat", ()), ("statx", ()),
    ("getdents64", ()), ("ioctl", ()), ("fcntl", ()), ("pipe2", ()), ("dup2", ()), ("set_tid_address", ()),
    ("set_robust_list", ()), ("rseq", ()), ("prlimit64", ()), ("getrandom", ()), ("arch_prctl", ()),
    ("clock_nanosleep", ()), ("nanosleep", ()), ("poll", ()), ("epoll_wait", ()), ("select", ()),
    ("connect", ()), ("bind", ()), ("listen", ()), ("accept4", ()), ("sendto", ()), ("recvfrom", ()),
    ("setsockopt", ()), ("setuid", ()), ("setgid", ()), ("setgroups", ()), ("capget", ()), ("prctl", ()),
    ("uname", ()), ("sysinfo", ()), ("getcwd", ()), ("chdir", ()), ("mkdir", ()), ("unlink", ()),
    ("rename", ()), ("chmod", ()), ("utimensat", ()), ("kill", ()), ("vfork", ()), ("madvise", ()),
    ("sched_getaffinity", ()), ("eventfd2", ()), ("memfd_create", ()), ("faccessat2", ()),
    ("chroot", ()), ("ptrace", ()),
    ("clone", (FORK_FLAGS,)), ("clone", (THREAD_FLAGS,)),
    ("socket", (2, 1, 0)), ("socket", (1, 1, 0)), ("socket", (10, 2, 0)), ("socket", (17, 3, 0)),
    ("personality", (0x0,)), ("personality", (0x8,)), ("personality", (0x20000,)),
    ("personality", (0x20008,)), ("personality", (0xFFFFFFFF,)),
])
def test_what_busybox_glibc_and_python_need_is_allowed(profile: dict[str, Any], name: str,
                                                       args: tuple[int, ...]) -> None:
    assert verdict(profile, name, *args) == "allow"


@pytest.mark.parametrize("name, args, errno", [
    ("clone", (CLONE_NEWUSER | 17,), EPERM), ("clone", (CLONE_NEWNS | FORK_FLAGS,), EPERM),
    ("clone", (CLONE_NEWNET,), EPERM), ("clone", (CLONE_NEWPID | CLONE_NEWUSER,), EPERM),
    ("clone3", (), ENOSYS),  # glibc then falls back to clone, whose flags the filter can read
    ("socket", (40, 1, 0), EPERM),  # AF_VSOCK
    ("personality", (0x0040000,), EPERM),  # ADDR_NO_RANDOMIZE
    ("personality", (0x0400000,), EPERM),  # READ_IMPLIES_EXEC
    ("syslog", (), EPERM), ("unshare", (CLONE_NEWUSER,), EPERM), ("setns", (), EPERM),
    ("mount", (), EPERM), ("umount2", (), EPERM), ("pivot_root", (), EPERM), ("keyctl", (), EPERM),
    ("add_key", (), EPERM), ("request_key", (), EPERM), ("bpf", (), EPERM), ("perf_event_open", (), EPERM),
    ("userfaultfd", (), EPERM), ("kexec_load", (), EPERM), ("init_module", (), EPERM),
    ("finit_module", (), EPERM), ("delete_module", (), EPERM), ("reboot", (), EPERM), ("swapon", (), EPERM),
    ("open_by_handle_at", (), EPERM), ("fsopen", (), EPERM), ("open_tree", (), EPERM),
    ("move_mount", (), EPERM), ("sethostname", (), EPERM), ("settimeofday", (), EPERM),
    ("clock_settime", (), EPERM), ("iopl", (), EPERM), ("acct", (), EPERM), ("kcmp", (), EPERM),
    ("mbind", (), EPERM), ("vhangup", (), EPERM), ("quotactl", (), EPERM), ("lookup_dcookie", (), EPERM),
    ("fanotify_init", (), EPERM), ("no_such_syscall", (), EPERM),
])
def test_docker_refusals_hold(profile: dict[str, Any], name: str, args: tuple[int, ...], errno: int) -> None:
    assert verdict(profile, name, *args) == errno


def test_cap_conditional_rules_follow_the_container_caps() -> None:
    dropped = security.seccomp_profile(security.effective_caps(drop=["CAP_SYS_CHROOT"]), "x86_64")
    assert verdict(dropped, "chroot") == EPERM
    assert verdict(security.seccomp_profile([], "x86_64"), "chroot") == EPERM
    assert verdict(security.seccomp_profile(["CAP_SYS_CHROOT"], "x86_64"), "chroot") == "allow"


def test_machine_specific_rules() -> None:
    arm = security.seccomp_profile(security.DEFAULT_CAPS, "aarch64")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert verdict(arm, "arch_prctl") == EPERM and verdict(arm, "set_tls") == "allow"


def test_each_container_gets_its_own_copy() -> None:
    first = security.seccomp_profile()
    first["syscalls"][0]["names"].append("mount")
    assert verdict(security.seccomp_profile(), "mount") == EPERM


def test_the_config_carries_the_profile_for_the_container_caps() -> None:
    spec = CreateSpec("busybox", "sha256:x", cap_drop=["ALL"])
    config = ocispec.build_config(Container("c" * 64, "x", "now", spec), {}, Path("/b"), Path("/b/rootfs"),
                                  None, "/labagent/c")
    assert config["process"]["capabilities"] == {"bounding": [], "effective": [], "permitted": []}
    assert verdict(config["linux"]["seccomp"], "chroot") == EPERM
    assert verdict(config["linux"]["seccomp"], "read") == "allow"


def test_the_image_user_applies_when_the_body_has_none() -> None:
    image = {"config": {"User": "app:staff"}}
    assert ocispec.user_spec(CreateSpec("i", "x"), image) == "app:staff"
    assert ocispec.user_spec(CreateSpec("i", "x", user="1000"), image) == "1000"
    assert ocispec.user_spec(CreateSpec("i", "x"), {}) == ""
