"""The shim's relay for a container with a terminal (Tty) or an open stdin (OpenStdin).

Run by the container's shim as `python3 stdiorelay.py [--tty] [--stdin] BUNDLE -- CRUN-ARGV`;
stdlib only, so that it runs as a plain script. It starts crun as its child and exits with
crun's status, so the shim records the container's exit code as for any container. Being
in the shim's tree, not the engine's, it keeps the pty and the stdin open while the engine
restarts; the engine talks to it through FIFOs in the bundle, which it opens read-write
(never at end of file, never blocking an open):

- stdin.fifo: the attached clients' input. With --tty it goes to the pty master; with
  --stdin to a pipe that is crun's (and so the process's) stdin. Written before the
  container starts, it waits in the FIFO.
- control.fifo: one line per message, from the engine. `size H W` sets the pty's window
  (TIOCSWINSZ on the master the relay holds: the process gets SIGWINCH); `eof` closes the
  process's stdin once what the FIFO holds is passed on (StdinOnce: the first client's
  end of input). A FIFO is simpler than handing the master to the engine: the engine
  writes a line whether it started the container or adopted it after a restart.
- stdout.fifo (--tty only): the master's output, one stream as a terminal has.

With --tty, the relay listens on a console socket of its own (in a private temporary
directory: a socket path must fit in 108 bytes) and puts `--console-socket PATH` before
crun's last argument (the container id); crun sends the master there.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import termios

STDIN_FIFO = "stdin.fifo"
CONTROL_FIFO = "control.fifo"
STDOUT_FIFO = "stdout.fifo"
HELD = 1 << 16  # bytes held on the way in and out before the relay stops reading more
MAX_LINE = 128  # a control line longer than this is dropped
MAX_SIZE = 65535


def open_fifo(path: str) -> int:
    """The FIFO at path, made if missing, opened read-write and non-blocking."""
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)


def parse_control(line: bytes) -> tuple[str, int, int] | None:
    """b"size 30 100" -> ("size", 30, 100); b"eof" -> ("eof", 0, 0); anything else None."""
    words = line.split()
    if words == [b"eof"]:
        return ("eof", 0, 0)
    if len(words) == 3 and words[0] == b"size" and words[1].isdigit() and words[2].isdigit():
        height, width = int(words[1]), int(words[2])
        if height <= MAX_SIZE and width <= MAX_SIZE:
            return ("size", height, width)
    return None


class Relay:
    def __init__(self, bundle: str, argv: list[str], tty: bool, stdin: bool) -> None:
        self.bundle, self.argv, self.tty, self.stdin = bundle, argv, tty, stdin
        self.stdin_fifo = open_fifo(os.path.join(bundle, STDIN_FIFO))
        self.control = open_fifo(os.path.join(bundle, CONTROL_FIFO))
        self.out = open_fifo(os.path.join(bundle, STDOUT_FIFO)) if tty else -1
        self.target = -1  # where input goes: the master, or the process's stdin pipe
        self.master = -1
        self.size: tuple[int, int] | None = None
        self.inbound = bytearray()
        self.outbound = bytearray()
        self.control_buf = b""
        self.closing = False  # eof asked for: close the process's stdin once input is passed on
        self.input_gone = False
        self.listener: socket.socket | None = None
        self.conn: socket.socket | None = None
        self.sock_dir = ""

    def start(self) -> subprocess.Popen[bytes]:
        child_stdin: int = subprocess.DEVNULL
        argv = list(self.argv)
        if self.tty:
            self.sock_dir = tempfile.mkdtemp(prefix="lab-tty-")
            path = os.path.join(self.sock_dir, "console.sock")
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(path)
            self.listener.listen(1)
            argv = [*argv[:-1], "--console-socket", path, argv[-1]]
        elif self.stdin:
            read_end, self.target = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(self.target, False)
            child_stdin = read_end
        proc = subprocess.Popen(argv, stdin=child_stdin)
        if child_stdin >= 0:
            os.close(child_stdin)
        return proc

    def run(self) -> int:
        proc = self.start()
        pidfd = os.pidfd_open(proc.pid)
        try:
            while True:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.register(self.control, select.POLLIN)
                if len(self.inbound) < HELD and not self.input_gone:
                    poller.register(self.stdin_fifo, select.POLLIN)
                if self.inbound and self.target >= 0:
                    poller.register(self.target, select.POLLOUT)
                if self.master >= 0 and len(self.outbound) < HELD:
                    poller.register(self.master, select.POLLIN)
                if self.outbound:
                    poller.register(self.out, select.POLLOUT)
                for sock in (self.listener, self.conn):
                    if sock is not None:
                        poller.register(sock, select.POLLIN)
                try:
                    events = dict(poller.poll())
                except InterruptedError:
                    continue
                if pidfd in events:
                    break
                self.step(events)
            proc.wait()
            self.drain()
        finally:
            os.close(pidfd)
            self.close_console()
        code = proc.returncode
        return code if code >= 0 else 128 - code

    def step(self, events: dict[int, int]) -> None:
        if self.listener is not None and self.listener.fileno() in events:
            self.conn, _ = self.listener.accept()
        elif self.conn is not None and self.conn.fileno() in events:
            self.take_master()
        if self.control in events:
            self.read_control()
        if self.stdin_fifo in events:
            self.read_input()
        if self.target >= 0 and self.target in events:
            self.write_input()
        if self.master >= 0 and self.master in events:
            self.read_master()
        if self.out >= 0 and self.out in events:
            self.write_output()
        # once the FIFO holds nothing more, the process's stdin ends
        if self.closing and not self.inbound and self.target >= 0 and not self.tty and not self.read_input():
            os.close(self.target)
            self.target, self.input_gone = -1, True

    # the terminal ------------------------------------------------------------------------
    def take_master(self) -> None:
        assert self.conn is not None
        try:
            _, fds, _, _ = socket.recv_fds(self.conn, 1024, 1, socket.MSG_CMSG_CLOEXEC)
        except OSError:
            fds = []
        self.close_console()
        if not fds:
            return  # crun failed on its way; its exit follows
        self.master = self.target = fds[0]
        os.set_blocking(self.master, False)
        if self.size:
            self.apply_size()

    def close_console(self) -> None:
        for sock in (self.conn, self.listener):
            if sock is not None:
                sock.close()
        self.conn = self.listener = None
        if self.sock_dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
            self.sock_dir = ""

    def apply_size(self) -> None:
        if self.master >= 0 and self.size:
            with contextlib.suppress(OSError):
                termios.tcsetwinsize(self.master, self.size)

    def read_master(self) -> bool:
        try:
            data = os.read(self.master, HELD)
        except BlockingIOError:
            return False
        except OSError:  # EIO: every slave is closed
            data = b""
        if not data:
            os.close(self.master)
            if self.target == self.master:
                self.target = -1
            self.master = -1
            return False
        self.outbound += data
        self.write_output()
        return True

    def write_output(self) -> None:
        try:
            del self.outbound[:os.write(self.out, self.outbound)]
        except BlockingIOError:
            pass

    def drain(self) -> None:
        """crun is gone: what the master still holds goes out, then the relay ends."""
        while self.master >= 0 and self.read_master():
            pass
        if self.out >= 0:
            os.set_blocking(self.out, True)
            while self.outbound:
                self.write_output()

    # input and control -------------------------------------------------------------------
    def read_input(self) -> bool:
        try:
            data = os.read(self.stdin_fifo, HELD)
        except BlockingIOError:
            return False
        if self.input_gone or (self.target < 0 and not self.tty):
            return bool(data)  # nobody to give it to: dropped
        self.inbound += data
        self.write_input()
        return bool(data)

    def write_input(self) -> None:
        if self.target < 0 or not self.inbound:
            return
        try:
            del self.inbound[:os.write(self.target, self.inbound)]
        except BlockingIOError:
            pass
        except OSError:  # the process closed its stdin or exited
            self.inbound.clear()
            self.input_gone = True

    def read_control(self) -> None:
        try:
            data = os.read(self.control, 4096)
        except BlockingIOError:
            return
        self.control_buf += data
        *lines, self.control_buf = self.control_buf.split(b"\n")
        if len(self.control_buf) > MAX_LINE:
            self.control_buf = b""
        for line in lines:
            message = parse_control(line)
            if message is None:
                continue
            verb, height, width = message
            if verb == "size":
                self.size = (height, width)
                self.apply_size()
            elif not self.tty:
                self.closing = True


def main(args: list[str]) -> int:
    tty = stdin = False
    while args and args[0] in ("--tty", "--stdin"):
        tty, stdin = tty or args[0] == "--tty", stdin or args[0] == "--stdin"
        args = args[1:]
    if len(args) < 3 or args[1] != "--":
        print("usage: stdiorelay.py [--tty] [--stdin] BUNDLE -- CRUN-ARGV", file=sys.stderr)
        return 2
    return Relay(args[0], args[2:], tty, stdin).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
