"""crun, driven through a tiny /bin/sh shim per container.

The shim is `sh -c '...; crun run ...; echo $? > exitcode'`: crun runs in the foreground as
the container's parent, and the shell records the exit code on disk. Neither needs the
engine, so a container survives an engine restart with its exit code intact. The
container's stdout/stderr are FIFOs opened read-write by the shim, so a write never fails
(EPIPE) while the engine is away; the engine's pump reopens them when it comes back.
A container with a terminal or an open stdin has the relay (stdiorelay.py) between the shim
and crun, holding the pty master and the stdin FIFO.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import contract
from ..errors import BadParameter, Conflict, EngineError
from . import stdiorelay

# Both shims first leave the engine's OOM score (-500) behind. On a node, crun 1.8 left a
# container with oomScoreAdj 0 in its config.json at the inherited -500, outranking sshd.
OOM_RESET = "echo 0 > /proc/self/oom_score_adj"
SHIM = OOM_RESET + '; echo $$ > "$1" 2>/dev/null; shift; exitfile=$1; shift; "$@"; echo $? > "$exitfile"'
EXEC_SHIM = OOM_RESET + ' && exec "$@"'
LOG_TAIL = 4096  # bytes of crun's log read for its last error


@dataclass(frozen=True)
class Shim:
    pid: int
    start: int


def proc_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat: tells a live process from a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def signal_in_cgroup(pid: int, cgroup: str, sig: int) -> bool:
    """Send sig to pid if it is (still) in cgroup (a path like /labagent/ID/ctr); else False."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/cgroup") as handle:
            if handle.read().strip() != f"0::{cgroup}":
                return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def parse_signal(value: str | int | None, default: int = signal.SIGKILL) -> int:
    """"SIGTERM", "TERM", "15" -> 15."""
    if value in (None, ""):
        return int(default)
    text = str(value).upper()
    if text.isdigit():
        return int(text)
    try:
        return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except KeyError:
        raise BadParameter(f"invalid signal: {value}") from None


class Runtime:
    def __init__(self, crun: str = "crun", state_dir: Path = Path(contract.CRUN_ROOT),
                 shell: str = "/bin/sh") -> None:
        self.crun = crun
        self.state_dir = state_dir
        self.shell = shell
        self._children: set[int] = set()  # shims started by this engine, to reap
        self._state_dir_made = False

    def _base(self) -> list[str]:
        return [self.crun, "--root", str(self.state_dir)]

    @staticmethod
    def fifos(bundle: Path) -> tuple[Path, Path]:
        return bundle / "stdout.fifo", bundle / "stderr.fifo"

    def launch(self, cid: str, bundle: Path, cgroup_procs: Path, tty: bool = False,
               stdin: bool = False) -> Shim:
        """Start `crun run` under the shim; returns at once (see wait for the pid file).

        A container with a terminal or an open stdin runs crun under the shim's relay
        (stdiorelay.py), which holds the pty master and the stdin FIFO; the rest run crun
        straight from the shim, without a Python process of their own.
        """
        if not self._state_dir_made:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._state_dir_made = True
        for name in ("init.pid", "exitcode", "crun.log"):
            with contextlib.suppress(FileNotFoundError):
                (bundle / name).unlink()
        fds = []
        for fifo in self.fifos(bundle):
            if not fifo.exists():
                os.mkfifo(fifo, 0o600)
            fds.append(os.open(fifo, os.O_RDWR))
        relay = relay_argv(bundle, tty, stdin) if tty or stdin else []
        argv = [self.shell, "-c", SHIM, "lab-shim", str(cgroup_procs), str(bundle / "exitcode"), *relay,
                *self._base(), "--log", str(bundle / "crun.log"), "run", "--bundle", str(bundle),
                "--pid-file", str(bundle / "init.pid"), cid]
        # posix_spawn, not Popen: half the Python work (2 ms under TCG). Every fd the
        # engine opens is close-on-exec (PEP 446, and O_CLOEXEC where opened by hand), so
        # the shim inherits only these three.
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, fds[0], 1), (os.POSIX_SPAWN_DUP2, fds[1], 2)]
        try:
            pid = os.posix_spawnp(self.shell, argv, os.environ, file_actions=actions, setsid=True)
        except OSError as exc:
            raise EngineError(f"cannot run {self.shell}: {exc}") from None
        finally:
            for fd in fds:
                os.close(fd)
        self._children.add(pid)
        return Shim(pid, proc_start_time(pid))

    def alive(self, pid: int, start: int) -> bool:
        return pid > 0 and proc_start_time(pid) == start != 0

    def reap(self, pid: int) -> None:
        """Collect a shim this engine started (it has exited: the supervisor saw it go)."""
        if pid in self._children:
            self._children.discard(pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    @staticmethod
    def read_pid(bundle: Path) -> int:
        try:
            return int((bundle / "init.pid").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    @staticmethod
    def exit_code(bundle: Path) -> int | None:
        try:
            return int((bundle / "exitcode").read_text().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def failure(bundle: Path) -> str:
        """crun's own last error line, for a start that never reached the process."""
        return last_line(bundle / "crun.log")

    def kill(self, cid: str, sig: int, pid: int = 0, cgroup: str = "") -> None:
        """Signal the container's init, as `crun kill` does.

        Given its pid and cgroup, directly: a pidfd pins the process, and the check that
        it lives in the container's cgroup rules out a recycled pid. That saves a crun
        process (about 25 ms of CPU under TCG) per stop, kill and forced remove.
        """
        if pid and cgroup and signal_in_cgroup(pid, cgroup, sig):
            return
        result = subprocess.run([*self._base(), "kill", cid, str(sig)], capture_output=True, text=True)
        if result.returncode != 0:
            raise Conflict(f"cannot kill container {cid}: {result.stderr.strip() or 'not running'}")

    def delete(self, cid: str) -> None:
        """Forget crun's state for a container whose process is gone (best effort).

        `crun run` deletes its own state when the container exits, so only a crun that
        was itself killed leaves any: no crun process for the usual case.
        """
        if (self.state_dir / cid).exists():
            subprocess.run([*self._base(), "delete", "--force", cid], capture_output=True)

    def exec(self, cid: str, files: ExecFiles | Path, stdin: bool = False,
             console: Path | None = None) -> subprocess.Popen[bytes]:
        """`crun exec --process`; the caller pumps stdout and stderr (and feeds stdin if asked).

        The process file carries the container's own confinement (capabilities, user,
        rlimits, no_new_privs); crun exec never applies an OOM score, so EXEC_SHIM does.
        With a console (the process file says terminal: true) crun sends the pty master
        there and its own stdout and stderr carry only its errors. crun writes the
        process's pid to files.pid and its errors (a command it could not start) to
        files.log; given only a process file, crun's errors go to its stderr.
        """
        if isinstance(files, ExecFiles):
            argv = [*self._base(), "--log", str(files.log), "exec", "--process", str(files.process),
                    "--pid-file", str(files.pid)]
        else:
            argv = [*self._base(), "exec", "--process", str(files)]
        if console is not None:
            argv += ["--tty", "--console-socket", str(console)]
        try:
            return subprocess.Popen(["/bin/sh", "-c", EXEC_SHIM, "lab-exec", *argv, cid],
                                    stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise EngineError(f"cannot run {self.crun}: {exc}") from None


def relay_argv(bundle: Path, tty: bool, stdin: bool) -> list[str]:
    """The relay, run as a script (-I -S: stdlib only, no site, a quicker start), before crun's argv."""
    flags = [flag for flag, on in (("--tty", tty), ("--stdin", stdin)) if on]
    return [sys.executable or "/usr/bin/python3", "-I", "-S", str(Path(stdiorelay.__file__)), *flags,
            str(bundle), "--"]


@dataclass(frozen=True)
class ExecFiles:
    """An exec's files in its container's bundle: the process it runs, its pid, crun's log."""

    process: Path
    pid: Path
    log: Path

    @classmethod
    def of(cls, bundle: Path, exec_id: str) -> ExecFiles:
        return cls(bundle / f"exec-{exec_id}.json", bundle / f"exec-{exec_id}.pid",
                   bundle / f"exec-{exec_id}.log")

    def read_pid(self) -> int:
        try:
            return int(self.pid.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def remove(self) -> None:
        for path in (self.process, self.pid, self.log):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def last_line(log: Path) -> str:
    """crun's own last error line, for a process it never reached."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - LOG_TAIL))
            text = handle.read(LOG_TAIL).decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""
