"""Runs the checks with pytest in this process and collects one result per check."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..state import LabState

CHECKS_DIR = Path(__file__).resolve().parent / "checks"
CLAIMS = {
    "test_vm_isolation": "VM isolation",
    "test_containers": "shared kernel and namespaces",
    "test_cgroups": "cgroups",
    "test_layers": "layers",
    "test_hardening": "hardening",
}


@dataclass
class CheckResult:
    name: str
    claim: str
    outcome: str
    message: str
    seconds: float


@dataclass
class VerifyOptions:
    select: str | None = None
    junit_xml: Path | None = None
    probe_memory: str = "32M"
    probe_pid_mode: str = ""
    extra_args: list[str] = field(default_factory=list)


class Collector:
    """A pytest plugin object that keeps each check's outcome and first failure line."""

    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            module, _, name = report.nodeid.rpartition("::")
            claim = CLAIMS.get(Path(module).stem, Path(module).stem)
            message = ""
            if report.failed:
                message = _first_line(report)
            elif report.skipped and isinstance(report.longrepr, tuple):
                message = str(report.longrepr[2])
            self.results.append(CheckResult(name, claim, report.outcome, message, round(report.duration, 2)))


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.splitlines()[0] if text else "failed"


def verify(name: str, options: VerifyOptions) -> list[CheckResult]:
    LabState(name).load()  # a clear error for an unknown lab, before pytest starts
    args = [
        str(CHECKS_DIR), "-p", "no:cacheprovider",
        "--rootdir", str(CHECKS_DIR), "-c", os.devnull, "-q", "--no-header", "-p", "no:warnings",
        "--lab", name, "--probe-memory", options.probe_memory, "--probe-pid-mode", options.probe_pid_mode,
    ]
    if options.select:
        args += ["-k", options.select]
    if options.junit_xml:
        args += ["--junit-xml", str(options.junit_xml)]
    collector = Collector()
    # pytest's own report goes to stderr: stdout carries the table or the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        pytest.main([*args, *options.extra_args], plugins=[collector])
    if options == VerifyOptions(junit_xml=options.junit_xml):  # a full run of the real lab
        save_claims(name, collector.results)
    return collector.results


def save_claims(name: str, results: list[CheckResult]) -> None:
    """Each claim's verdict from a full run, for `lab report`."""
    claims: dict[str, str] = {}
    for result in results:
        if result.outcome == "failed" or claims.get(result.claim) == "failed":
            claims[result.claim] = "failed"
        elif result.outcome == "passed":
            claims[result.claim] = "passed"
    LabState(name).verify_results.write_text(json.dumps(claims, indent=2))
