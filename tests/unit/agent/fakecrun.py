"""A stand-in for crun on the host: runs the container's process without namespaces.

It understands just what labagent.runtime.crun calls: run (with a terminal too), kill, exec, delete. State lives in
--root as one file per container holding the process pid. `exec` writes --pid-file, reports a
command it cannot find to --log, and with a terminal (the process file's, or --tty) makes a
pty on the host and sends its master to --console-socket, as crun does.
"""

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import termios

CGROUP_ROOT = ""  # set by the generated crun script: run writes the process's pid in its cgroup.procs


def main(args: list[str]) -> int:
    if args == ["--version"]:  # what the engine's info reads (RuncCommit)
        print("crun version 1.8.1\ncommit: f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed\nspec: 1.0.0")
        return 0
    root = log = ""
    while args and args[0].startswith("--"):
        opt, value = args.pop(0), args.pop(0)
        if opt == "--root":
            root = value
        elif opt == "--log":
            log = value
    os.makedirs(root, exist_ok=True)
    verb = args.pop(0)
    opts: dict[str, list[str]] = {}
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt in ("--no-new-privs", "--force", "--tty"):
            opts[opt] = []
        else:
            opts.setdefault(opt, []).append(args.pop(0))
    cid = args.pop(0)
    state = os.path.join(root, cid)
    if verb == "run":
        bundle = opts["--bundle"][0]
        with open(os.path.join(bundle, "config.json")) as handle:
            config = json.load(handle)
        argv = config["process"]["args"]
        if not any(os.access(os.path.join(d, argv[0]), os.X_OK) for d in os.environ["PATH"].split(":")):
            with open(log, "a") as handle:
                handle.write(f"executable file `{argv[0]}` not found in $PATH\n")
            return 127
        env = dict(item.split("=", 1) for item in config["process"]["env"])
        env["PATH"] = os.environ["PATH"]
        env["HOSTNAME"] = config.get("hostname", "")  # none: the node's UTS namespace (UTSMode host)
        # cwd is the container's upper dir, so relative writes land where overlay would put them
        if config["process"].get("terminal"):
            return run_on_a_pty(argv, env, bundle, opts, config, state)
        proc = subprocess.Popen(argv, env=env, cwd=os.path.join(bundle, "upper"))
        with open(state, "w") as handle:
            handle.write(str(proc.pid))
        cgroups_path = config.get("linux", {}).get("cgroupsPath", "")
        if CGROUP_ROOT and cgroups_path:
            group = os.path.join(CGROUP_ROOT, cgroups_path.lstrip("/"))
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, "cgroup.procs"), "w") as handle:
                handle.write(f"{proc.pid}\n")
        with open(opts["--pid-file"][0], "w") as handle:
            handle.write(str(proc.pid))
        signal.signal(signal.SIGTERM, lambda s, f: proc.send_signal(s))
        code = proc.wait()
        os.unlink(state)
        return code if code >= 0 else 128 - code
    if verb == "kill":
        try:
            with open(state) as handle:
                os.kill(int(handle.read()), int(args[0]))
        except (OSError, ValueError):
            print(f"container `{cid}` is not running", file=sys.stderr)
            return 1
        return 0
    if verb == "exec":
        if not os.path.exists(state):
            print(f"container `{cid}` is not running", file=sys.stderr)
            return 1
        # Like crun: the process file's env is the whole environment, so a missing PATH breaks the lookup.
        with open(opts["--process"][0]) as handle:
            process = json.load(handle)
        argv, env = process["args"], dict(item.split("=", 1) for item in process["env"])
        if "PATH" not in env and "/" not in argv[0]:
            print(f"executable file `{argv[0]}` not found in $PATH: No such file or directory", file=sys.stderr)
            return 255
        if process.get("cwd") and os.path.isdir(process["cwd"]):
            os.chdir(process["cwd"])
        with open(os.path.join(root, f"{cid}.exec.json"), "w") as handle:
            json.dump(process, handle)  # for the tests: this fake applies no user, caps or limits
        if shutil.which(argv[0], path=env.get("PATH", "")) is None and "/" not in argv[0]:
            message = f"executable file `{argv[0]}` not found in $PATH: No such file or directory\n"
            if log:
                with open(log, "a") as handle:
                    handle.write(message)
            else:
                sys.stderr.write(message)
            return 1
        if process.get("terminal") or "--tty" in opts:
            return exec_on_a_pty(argv, env, opts, process)
        if "--pid-file" in opts:
            with open(opts["--pid-file"][0], "w") as handle:
                handle.write(str(os.getpid()))  # execvpe keeps the pid
        os.execvpe(argv[0], argv, env)
    if verb == "delete":
        if os.path.exists(state):
            os.unlink(state)
        return 0
    return 2


def exec_on_a_pty(argv: list[str], env: dict[str, str], opts: dict[str, list[str]], process: dict) -> int:
    """crun's --console-socket handshake: the master goes to the socket, the process runs on the slave."""
    if "--console-socket" not in opts:
        print("this fake needs --console-socket for a terminal", file=sys.stderr)
        return 1
    master, slave = os.openpty()
    size = process.get("consoleSize")
    if size:  # as crun: the pty has its size before the process starts
        termios.tcsetwinsize(slave, (size["height"], size["width"]))
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(slave)
    if "--pid-file" in opts:  # written before the terminal is handed over, so a client never sees pid 0
        with open(opts["--pid-file"][0], "w") as handle:
            handle.write(str(pid))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(opts["--console-socket"][0])
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    os.close(master)
    signal.signal(signal.SIGTERM, lambda s, f: os.kill(pid, s))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def run_on_a_pty(argv: list[str], env: dict[str, str], bundle: str, opts: dict[str, list[str]], config: dict,
                 state: str) -> int:
    """`run --console-socket` with terminal: true: the process on a host pty, its master sent as crun does."""
    if "--console-socket" not in opts:
        print("this fake needs --console-socket for a terminal", file=sys.stderr)
        return 1
    master, slave = os.openpty()
    size = config["process"].get("consoleSize")
    if size:
        termios.tcsetwinsize(slave, (size["height"], size["width"]))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # crun sends it before the process runs
        sock.connect(opts["--console-socket"][0])
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    os.close(master)
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.chdir(os.path.join(bundle, "upper"))
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(slave)
    with open(state, "w") as handle:
        handle.write(str(pid))
    cgroups_path = config.get("linux", {}).get("cgroupsPath", "")
    if CGROUP_ROOT and cgroups_path:
        group = os.path.join(CGROUP_ROOT, cgroups_path.lstrip("/"))
        os.makedirs(group, exist_ok=True)
        with open(os.path.join(group, "cgroup.procs"), "w") as handle:
            handle.write(f"{pid}\n")
    with open(opts["--pid-file"][0], "w") as handle:
        handle.write(str(pid))
    signal.signal(signal.SIGTERM, lambda s, f: os.kill(pid, s))
    _, status = os.waitpid(pid, 0)
    os.unlink(state)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
