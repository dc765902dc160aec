"""Runs the checks with pytest in this process and collects one result per check."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..errors import LabError
from ..state import LabState
from .claims import claim_of

CHECKS_DIR = Path(__file__).resolve().parent / "checks"


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
            module, name = split_nodeid(report.nodeid)
            registered = claim_of(module)
            claim = registered.title if registered else module
            message = ""
            if report.failed:
                message = _first_line(report)
            elif report.skipped and isinstance(report.longrepr, tuple):
                message = str(report.longrepr[2])
            self.results.append(CheckResult(name, claim, report.outcome, message, round(report.duration, 2)))


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """`test_cgroups.py::test_x[a]` as its module's stem and the check's name."""
    module, _, name = nodeid.rpartition("::")
    return Path(module).stem, name


class ItemList:
    """A pytest plugin object that keeps the node ids of the collected checks."""

    def __init__(self) -> None:
        self.nodeids: list[str] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.nodeids = [item.nodeid for item in session.items]


def pytest_args() -> list[str]:
    """How verify runs pytest over the checks: this package's checks only, no user config."""
    return [
        str(CHECKS_DIR), "-p", "no:cacheprovider",
        "--rootdir", str(CHECKS_DIR), "-c", os.devnull, "-q", "--no-header", "-p", "no:warnings",
    ]


def collect() -> list[tuple[str, str]]:
    """(module, check) for every check verify would run, found as pytest finds them; no lab needed."""
    items = ItemList()
    with contextlib.redirect_stdout(sys.stderr):
        code = pytest.main([*pytest_args(), "--collect-only"], plugins=[items])
    if code != pytest.ExitCode.OK:
        raise LabError(f"collecting the checks failed (pytest exit {code})")
    return [split_nodeid(nodeid) for nodeid in items.nodeids]


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.splitlines()[0] if text else "failed"


def verify(name: str, options: VerifyOptions) -> list[CheckResult]:
    LabState(name).load()  # a clear error for an unknown lab, before pytest starts
    args = [
        *pytest_args(),
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
