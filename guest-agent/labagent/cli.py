"""`labctl`: docker-like verbs that talk to the engine only through its API socket."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from . import contract
from .client import ApiError, Client
from .containers.model import parse_publish
from .errors import EngineError
from .units import human_size, parse_cpus


def _out(stream: int, data: bytes) -> None:
    target = sys.stdout if stream == 1 else sys.stderr
    target.buffer.write(data)
    target.flush()


def _ago(ts: int) -> str:
    from .api.views import human_duration

    return f"{human_duration(time.time() - ts)} ago"


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_run(c: Client, a: argparse.Namespace) -> int:
    body: dict[str, Any] = {"Image": a.image, "Cmd": a.command or None, "Env": a.env,
                            "HostConfig": {"PortBindings": {}, "AutoRemove": a.rm}}
    host = body["HostConfig"]
    for spec in a.publish:
        p = parse_publish(spec)
        binding = {"HostIp": p.host_ip, "HostPort": str(p.host_port)}
        host["PortBindings"].setdefault(p.key, []).append(binding)
    body["ExposedPorts"] = {key: {} for key in host["PortBindings"]}
    if a.memory:
        host["Memory"] = a.memory  # validated by the engine (it accepts Docker's size strings)
    if a.cpus:
        host["NanoCpus"] = parse_cpus(a.cpus)
    if a.pids_limit is not None:
        host["PidsLimit"] = a.pids_limit
    if a.pid:
        host["PidMode"] = a.pid
    cid = c.json("POST", "/containers/create", {"name": a.name}, body)["Id"]
    c.request("POST", f"/containers/{cid}/start").read()
    if a.detach:
        print(cid)
        return 0
    for stream, data in c.frames("GET", f"/containers/{cid}/logs",
                                 {"stdout": 1, "stderr": 1, "follow": 1}):
        _out(stream, data)
    result = c.json("POST", f"/containers/{cid}/wait", {"condition": "not-running"})
    return int(result["StatusCode"])


def cmd_ps(c: Client, a: argparse.Namespace) -> int:
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for item in c.json("GET", "/containers/json", {"all": 1 if a.all else None}):
        ports = ", ".join(f"{p['IP']}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
                          for p in item["Ports"])
        command = item["Command"] if len(item["Command"]) <= 20 else item["Command"][:19] + "…"
        rows.append([item["Id"][:12], item["Image"], f'"{command}"', _ago(item["Created"]),
                     item["Status"], ports, ",".join(n.lstrip("/") for n in item["Names"])])
    if a.quiet:
        print("\n".join(r[0] for r in rows[1:]))
    else:
        _table(rows)
    return 0


def cmd_logs(c: Client, a: argparse.Namespace) -> int:
    query = {"stdout": 1, "stderr": 1, "follow": 1 if a.follow else None, "tail": a.tail,
             "timestamps": 1 if a.timestamps else None}
    for stream, data in c.frames("GET", f"/containers/{c.ref(a.container)}/logs", query):
        _out(stream, data)
    return 0


def cmd_exec(c: Client, a: argparse.Namespace) -> int:
    body = {"Cmd": a.command, "Env": a.env, "AttachStdout": True, "AttachStderr": True}
    eid = c.json("POST", f"/containers/{c.ref(a.container)}/exec", body=body)["Id"]
    for stream, data in c.frames("POST", f"/exec/{eid}/start", body={"Detach": False, "Tty": False}):
        _out(stream, data)
    code = c.json("GET", f"/exec/{eid}/json")["ExitCode"]
    return int(code if code is not None else 1)


def cmd_inspect(c: Client, a: argparse.Namespace) -> int:
    items = [c.json("GET", f"/containers/{c.ref(ref)}/json") for ref in a.containers]
    print(json.dumps(items, indent=4))
    return 0


def _each(c: Client, refs: list[str], method: str, suffix: str, query: dict[str, Any]) -> int:
    failed = 0
    for ref in refs:
        try:
            c.request(method, f"/containers/{c.ref(ref)}{suffix}", query).read()
            print(ref)
        except ApiError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            failed = 1
    return failed


def cmd_stop(c: Client, a: argparse.Namespace) -> int:
    return _each(c, a.containers, "POST", "/stop", {"t": a.time})


def cmd_kill(c: Client, a: argparse.Namespace) -> int:
    return _each(c, a.containers, "POST", "/kill", {"signal": a.signal})


def cmd_rm(c: Client, a: argparse.Namespace) -> int:
    return _each(c, a.containers, "DELETE", "", {"force": 1 if a.force else None})


def cmd_wait(c: Client, a: argparse.Namespace) -> int:
    for ref in a.containers:
        print(c.json("POST", f"/containers/{c.ref(ref)}/wait")["StatusCode"])
    return 0


def cmd_images(c: Client, a: argparse.Namespace) -> int:
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for image in c.json("GET", "/images/json"):
        for tag in image["RepoTags"]:
            repo, _, name = tag.rpartition(":")
            rows.append([repo, name, image["Id"].removeprefix("sha256:")[:12], _ago(image["Created"]),
                         human_size(image["Size"])])
    _table(rows)
    return 0


def cmd_load(c: Client, a: argparse.Namespace) -> int:
    with open(a.input, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        response = c.request("POST", "/images/load", {"quiet": 1}, raw=handle, length=size)
        for line in response.read().splitlines():
            item = json.loads(line) if line.strip() else {}
            if "error" in item:  # the engine reports a failed load in-band, as dockerd does
                print(item["error"], file=sys.stderr)
                return 1
            if item.get("stream"):
                print(item["stream"].rstrip())
    return 0


def cmd_build(c: Client, a: argparse.Namespace) -> int:
    """Send DIR as a tar context to POST /build and print its progress lines."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(a.dir, arcname=".")
    query = {"t": a.tag, "dockerfile": a.file}
    response = c.request("POST", "/build", query, raw=buf.getvalue(), length=buf.tell())
    while line := response.readline():
        item = json.loads(line) if line.strip() else {}
        if "error" in item:
            print(item["error"], file=sys.stderr)
            return 1
        _out(1, item.get("stream", "").encode())
    return 0


def cmd_rmi(c: Client, a: argparse.Namespace) -> int:
    for ref in a.images:
        for item in c.json("DELETE", f"/images/{c.ref(ref)}", {"force": 1 if a.force else None}):
            for key, value in item.items():
                print(f"{key}: {value}")
    return 0


def cmd_version(c: Client, a: argparse.Namespace) -> int:
    print(json.dumps(c.json("GET", "/version"), indent=2))
    return 0


def cmd_info(c: Client, a: argparse.Namespace) -> int:
    print(json.dumps(c.json("GET", "/info"), indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labctl", description="Talk to the lab-agent engine.")
    p.add_argument("-H", "--socket",
                   help=f"engine socket (default ${contract.SOCKET_ENV} or {contract.SOCKET})")
    sub = p.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run", help="create and start a container")
    r.add_argument("--name")
    r.add_argument("-p", "--publish", action="append", default=[])
    r.add_argument("-e", "--env", action="append", default=[])
    r.add_argument("--memory", "-m")
    r.add_argument("--cpus")
    r.add_argument("--pids-limit", type=int)
    r.add_argument("--pid", choices=["host"], help="share the node's pid namespace")
    r.add_argument("-d", "--detach", action="store_true")
    r.add_argument("--rm", action="store_true")
    r.add_argument("image")
    r.add_argument("command", nargs=argparse.REMAINDER)
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("ps", help="list containers")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_ps)
    s = sub.add_parser("logs", help="print a container's output")
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("-t", "--timestamps", action="store_true")
    s.add_argument("--tail")
    s.add_argument("container")
    s.set_defaults(func=cmd_logs)
    s = sub.add_parser("exec", help="run a command in a running container")
    s.add_argument("-e", "--env", action="append", default=[])
    s.add_argument("container")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_exec)
    for verb, func, plural in (("inspect", cmd_inspect, "containers"), ("wait", cmd_wait, "containers")):
        s = sub.add_parser(verb)
        s.add_argument(plural, nargs="+")
        s.set_defaults(func=func)
    s = sub.add_parser("stop")
    s.add_argument("-t", "--time", type=int, default=10)
    s.add_argument("containers", nargs="+")
    s.set_defaults(func=cmd_stop)
    s = sub.add_parser("kill")
    s.add_argument("-s", "--signal", default="KILL")
    s.add_argument("containers", nargs="+")
    s.set_defaults(func=cmd_kill)
    s = sub.add_parser("rm")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("containers", nargs="+")
    s.set_defaults(func=cmd_rm)
    sub.add_parser("images").set_defaults(func=cmd_images)
    s = sub.add_parser("rmi")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("images", nargs="+")
    s.set_defaults(func=cmd_rmi)
    s = sub.add_parser("load")
    s.add_argument("-i", "--input", required=True)
    s.set_defaults(func=cmd_load)
    s = sub.add_parser("build", help="build an image from DIR's Containerfile (or Dockerfile)")
    s.add_argument("-t", "--tag")
    s.add_argument("-f", "--file", help="the Containerfile's name inside DIR")
    s.add_argument("dir")
    s.set_defaults(func=cmd_build)
    sub.add_parser("version").set_defaults(func=cmd_version)
    sub.add_parser("info").set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "command", None) is not None and args.verb == "exec" and not args.command:
        print("error: exec needs a command", file=sys.stderr)
        return 2
    try:
        return int(args.func(Client(args.socket), args))
    except (ApiError, EngineError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 125 if args.verb == "run" else 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
