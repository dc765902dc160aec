"""Benchmark: VM boot-to-ready (fast image vs the stock recipe, in one run), destroy time,
QEMU memory, image build times, and container start latency (engine vs bare crun).

    .venv/bin/python bench/bench.py --runs 3

Figures, not pass/fail: each is printed with its min, median and max over the runs.
Uses a private LAB_HOME and the shared image cache (LAB_CACHE), and destroys every lab
it creates, even when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import platformdirs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from provisioner.report.measure import guest_measure_argv

ROOT = Path(__file__).resolve().parent.parent
LAB = [sys.executable, "-m", "provisioner.cli"]

ONE_NODE = "name: {name}\nnodes:\n  node1: {{image: {image}}}\n"
TWO_NODE = """name: {name}
defaults: {{image: {image}}}
nodes: {{node1: {{}}, node2: {{}}}}
links:
  - endpoints: [node1:eth1, node2:eth1]
    subnet: 10.10.0.0/24
"""


def lab(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([*LAB, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def timed(*args: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    lab(*args, env=env)
    return time.monotonic() - started


class Bench:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.figures: dict[str, list[float]] = defaultdict(list)

    def record(self, figure: str, value: float) -> None:
        self.figures[figure].append(value)
        print(f"  {figure}: {value:.1f}", flush=True)

    def labfile(self, template: str, name: str, image: str) -> str:
        path = self.workdir / f"{name}.yaml"
        path.write_text(template.format(name=name, image=image))
        return str(path)

    def one_lab(self, template: str, name: str, image: str, label: str) -> None:
        path = self.labfile(template, name, image)
        try:
            self.record(f"{label}: create to all ready (s)", timed("create", path, env=self.env))
            status = json.loads(lab("status", name, "--json", env=self.env))
            for node in status["nodes"]:
                for phase in ("ssh", "cloud_init", "agent"):
                    if phase in node["timings"] and len(status["nodes"]) == 1:
                        self.record(f"{label}: {phase} answered after (s)", node["timings"][phase])
            time.sleep(10)  # let the guests settle to idle before measuring memory
            status = json.loads(lab("status", name, "--json", env=self.env))
            rss = [node["rss_mib"] for node in status["nodes"] if node["rss_mib"]]
            self.record(f"{label}: QEMU RSS per idle node (MiB)", max(rss))
            if len(rss) > 1:
                self.record(f"{label}: total QEMU RSS (MiB)", sum(rss))
            if label.startswith("single, fast") and not self.figures.get("container start, engine (ms)"):
                self.containers(name)
        finally:
            self.record(f"{label}: destroy (s)", timed("destroy", name, env=self.env))

    def containers(self, name: str) -> None:
        done = subprocess.run([*LAB, "ssh", name, "node1", "--", *guest_measure_argv("containers", "10")],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self.env, cwd=ROOT)
        if done.returncode != 0:
            print(f"  container benchmark failed: {done.stderr.strip()}")
            return
        result = json.loads(done.stdout.strip().splitlines()[-1])
        self.record("container start, engine (ms)", result["engine_median_s"] * 1000)
        self.record("container start, bare crun (ms)", result["crun_median_s"] * 1000)
        self.record("container start back to back, engine (ms)", result["engine_back_to_back_median_s"] * 1000)
        self.record("container start back to back, bare crun (ms)", result["crun_back_to_back_median_s"] * 1000)
        self.record("engine RSS (MiB)", result["engine_rss_kib"] / 1024)
        done = subprocess.run([*LAB, "ssh", name, "node1", "--", *guest_measure_argv("api_floor")],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self.env, cwd=ROOT)
        if done.returncode == 0:
            floor = json.loads(done.stdout.strip().splitlines()[-1])
            self.record("engine API round trip, GET /_ping (ms)", floor["ping_median_s"] * 1000)

    def images(self, cold: bool) -> None:
        if cold:
            cold_env = dict(self.env, LAB_CACHE=str(self.workdir / "cold-cache"))
            self.record("image build, cold (s)", timed("image", "build", "debian-12", env=cold_env))
            shutil.rmtree(self.workdir / "cold-cache", ignore_errors=True)
        for image in ("debian-12", "debian-12-stock"):
            lab("image", "build", image, env=self.env)
        self.record("image build, warm cache hit (s)", timed("image", "build", "debian-12", env=self.env))

    def report(self) -> None:
        print("\n| figure | min | median | max | runs |\n|---|---|---|---|---|")
        for figure, values in self.figures.items():
            print(f"| {figure} | {min(values):.1f} | {statistics.median(values):.1f} | {max(values):.1f} "
                  f"| {len(values)} |")
        fast = self.figures.get("single, fast: create to all ready (s)")
        stock = self.figures.get("single, stock: create to all ready (s)")
        if fast and stock:
            ratio = statistics.median(fast) / statistics.median(stock)
            print(f"\nratio fast/stock, single node create to ready (medians): {ratio:.2f}")
        for mode in ("", " back to back"):
            engine = self.figures.get(f"container start{mode}, engine (ms)")
            bare = self.figures.get(f"container start{mode}, bare crun (ms)")
            if engine and bare:
                print(f"engine overhead over bare crun{mode or ', each start on a quiet node'}: "
                      f"{engine[0] / bare[0] - 1:+.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-stock", action="store_true", help="skip the stock-recipe comparison")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold image build")
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lab-b-", dir="/tmp"))
    env = dict(os.environ, LAB_HOME=str(home))
    env.setdefault("LAB_CACHE", platformdirs.user_cache_dir("lab"))
    bench = Bench(env, home)
    try:
        bench.images(cold=not options.no_cold)
        for run in range(options.runs):
            print(f"run {run + 1}/{options.runs}", flush=True)
            bench.one_lab(ONE_NODE, "b-fast", "debian-12", "single, fast")
            bench.one_lab(TWO_NODE, "b-two", "debian-12", "two-node, fast")
            if not options.no_stock:
                bench.one_lab(ONE_NODE, "b-stock", "debian-12-stock", "single, stock")
    finally:
        subprocess.run([*LAB, "destroy", "--all"], env=env, capture_output=True, cwd=ROOT)
        shutil.rmtree(home, ignore_errors=True)
        bench.report()


if __name__ == "__main__":
    main()
