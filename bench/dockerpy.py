"""Benchmark: docker-py's `containers.run(detach=True)` and `exec_run` against the docker CLI's
`run -d` and `exec`, on one node, through the same `lab docker-env` proxy, alternating.

    .venv/bin/python bench/dockerpy.py --runs 10            # boots a private single-node lab
    .venv/bin/python bench/dockerpy.py --lab two-node --node node1   # an existing lab

Figures, not pass/fail: medians of each variant, measured pair by pair in one run, and their
ratio (docker-py / CLI). The CLI pays a process start and a `HEAD /_ping` per command; docker-py
keeps its connections alive, so the ratio shows what keep-alive saves through the proxy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
LAB = [sys.executable, "-m", "provisioner.cli"]


def lab(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([*LAB, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def cli(host: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")} | {"DOCKER_HOST": host}
    done = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip()


def measure(host: str, runs: int) -> dict[str, list[float]]:
    client = docker.DockerClient(base_url=host, timeout=120)
    figures: dict[str, list[float]] = {k: [] for k in ("py run", "cli run", "py exec", "cli exec")}
    made: list[str] = []
    try:
        for _ in range(runs):
            started = time.monotonic()
            ctr = client.containers.run("busybox", ["sleep", "600"], detach=True)
            figures["py run"].append(time.monotonic() - started)
            made.append(ctr.id)
            started = time.monotonic()
            cid = cli(host, "run", "-d", "busybox", "sleep", "600")
            figures["cli run"].append(time.monotonic() - started)
            made.append(cid)
            started = time.monotonic()
            ctr.exec_run(["true"])
            figures["py exec"].append(time.monotonic() - started)
            started = time.monotonic()
            cli(host, "exec", cid, "true")
            figures["cli exec"].append(time.monotonic() - started)
    finally:
        for cid in made:
            client.api.remove_container(cid, force=True)
        client.close()
    return figures


def report(figures: dict[str, list[float]]) -> None:
    print("\n| figure | min | median | max | runs |\n|---|---|---|---|---|")
    for name, values in figures.items():
        print(f"| {name} (ms) | {min(values) * 1000:.0f} | {statistics.median(values) * 1000:.0f} "
              f"| {max(values) * 1000:.0f} | {len(values)} |")
    for verb in ("run", "exec"):
        ratios = [p / c for p, c in zip(figures[f"py {verb}"], figures[f"cli {verb}"], strict=True)]
        print(f"docker-py / CLI, {verb}: median of pairwise ratios {statistics.median(ratios):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--lab", help="an existing lab (default: boot a private single-node lab)")
    parser.add_argument("--node", default="node1")
    options = parser.parse_args()
    if shutil.which("docker") is None:
        raise SystemExit("the docker CLI is needed for the comparison")
    home = None if options.lab else Path(tempfile.mkdtemp(prefix="lab-b-", dir="/tmp"))
    env = dict(os.environ) if home is None else dict(os.environ, LAB_HOME=str(home))
    name = options.lab or "b-dockerpy"
    try:
        if home is not None:
            labfile = home / "single.yaml"
            labfile.write_text(f"name: {name}\nnodes:\n  node1: {{}}\n")
            print(f"creating {name} ...", flush=True)
            lab("create", str(labfile), env=env)
        out = lab("docker-env", name, options.node, env=env)
        host = out.split("DOCKER_HOST=", 1)[1].split()[0].strip("'\"")
        report(measure(host, options.runs))
    finally:
        subprocess.run([*LAB, "docker-env", "--unset", name, options.node], env=env, capture_output=True, cwd=ROOT)
        if home is not None:
            subprocess.run([*LAB, "destroy", name], env=env, capture_output=True, cwd=ROOT)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
