"""The claims registry: every check belongs to a claim, every claim has checks, and the
runner, the report and the README all read the same list."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from provisioner.state import LabState
from provisioner.verify import claims, runner
from provisioner.verify.runner import CheckResult, Collector, collect, save_claims

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_check_belongs_to_a_claim_and_every_claim_has_checks() -> None:
    collected = collect()
    assert len(collected) >= 25  # the e2e suite expects at least this many on a healthy lab
    assert claims.problems(collected) == []


def test_a_check_in_an_unregistered_module_is_found_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "test_cgroups.py").write_text("def test_limit():\n    pass\n")
    (tmp_path / "test_unclaimed_probe.py").write_text("def test_stray():\n    pass\n")
    monkeypatch.setattr(runner, "CHECKS_DIR", tmp_path)
    collected = collect()
    assert ("test_unclaimed_probe", "test_stray") in collected
    found = claims.problems(collected)
    assert "test_unclaimed_probe::test_stray belongs to no claim" in found
    assert "claim 'cgroups' has no checks in test_cgroups.py" not in found
    assert "claim 'hardening' has no checks in test_hardening.py" in found


def test_claim_ids_titles_and_design_claims_are_well_formed() -> None:
    assert len({claim.id for claim in claims.CLAIMS}) == len(claims.CLAIMS)
    assert len({claim.title for claim in claims.CLAIMS}) == len(claims.CLAIMS)
    for claim in claims.CLAIMS:
        assert claim.demonstrates and set(claim.demonstrates) <= set(claims.DEMONSTRATES), claim
    # The titles are verify's --json "claim" values and verify.json's keys: tests/e2e/test_verify.py pins them.
    assert {claim.title for claim in claims.CLAIMS} == {
        "VM isolation", "shared kernel and namespaces", "cgroups", "layers", "hardening"
    }


def test_the_readme_lists_exactly_the_registry() -> None:
    section = README.read_text().split("## Proving isolation", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert "\n".join(table) + "\n" == claims.markdown(), (
        "README's claim table differs from provisioner/verify/claims.py; "
        "paste the output of `python -m provisioner.verify.claims`"
    )


def report(nodeid: str, outcome: str = "passed") -> pytest.TestReport:
    return pytest.TestReport(nodeid, ("x.py", 0, "x"), {}, outcome, None, "call", [], 0.123)  # type: ignore[arg-type]


def test_results_are_grouped_under_the_registry_titles() -> None:
    collector = Collector()
    collector.pytest_runtest_logreport(report("test_containers.py::test_namespace_is_the_containers_own[mnt]"))
    collector.pytest_runtest_logreport(report("test_vm_isolation.py::test_each_node_runs_its_own_kernel", "failed"))
    first, second = collector.results
    assert (first.name, first.claim, first.outcome) == (
        "test_namespace_is_the_containers_own[mnt]", "shared kernel and namespaces", "passed"
    )
    assert (second.claim, second.outcome, second.seconds) == ("VM isolation", "failed", 0.12)


def test_json_shape_of_a_result_is_unchanged() -> None:
    """`lab verify --json` prints vars() of each result; the e2e suite reads these keys."""
    assert [f.name for f in fields(CheckResult)] == ["name", "claim", "outcome", "message", "seconds"]


def test_verdicts_are_saved_per_claim_title(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    state = LabState("claims-demo")
    state.verify_results.parent.mkdir(parents=True, exist_ok=True)
    save_claims("claims-demo", [
        CheckResult("test_a", "cgroups", "passed", "", 0.1),
        CheckResult("test_b", "cgroups", "failed", "boom", 0.1),
        CheckResult("test_c", "cgroups", "passed", "", 0.1),
        CheckResult("test_d", "layers", "passed", "", 0.1),
        CheckResult("test_e", "hardening", "skipped", "needs two nodes", 0.1),
    ])
    assert json.loads(state.verify_results.read_text()) == {"cgroups": "failed", "layers": "passed"}
