"""The report's rendering: every row filled from measurements, and a real PNG chart in the HTML."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from provisioner.report.measure import Comparison
from provisioner.report.render import markdown, write_html
from provisioner.verify import claims


def comparison(**changes: object) -> Comparison:
    values: dict[str, object] = dict(
        lab="demo", node="node1", vm_ready_s=[31.0, 35.0], vm_rss_mib=[500.0, 510.0], vm_disk_mib=640.0,
        vm_boot_ids=2, vm_nodes=2, container_start_s=0.25, crun_start_s=0.2, container_memory_mib=0.4,
        container_disk_mib=2.1, kernel_release="6.1.0-56-amd64", container_kernel_shared=True,
        verify={"VM isolation": "passed", "shared kernel and namespaces": "passed", "cgroups": "passed",
                "layers": "passed", "hardening": "failed"},
    )
    values.update(changes)
    return Comparison(**values)  # type: ignore[arg-type]


def test_markdown_has_every_row_with_the_measured_numbers() -> None:
    text = markdown(comparison())
    assert "| start time | 33.0 s boot to ready (median of 2 nodes) | 250 ms create+start" in text
    assert "| memory footprint | 505 MiB QEMU RSS per node | 0.40 MiB memory.current" in text
    assert "| disk | 640 MiB base image plus overlay | 2.10 MiB layers plus upper dir |" in text
    assert "shared with the node (6.1.0-56-amd64)" in text and "2 distinct boot ids on 2 nodes" in text
    assert "| isolation | verified: VM isolation passed | NOT verified: " in text and "hardening failed" in text
    assert "132x faster" in text


def test_unverified_lab_says_so() -> None:
    assert "not verified yet" in markdown(comparison(verify={}))


def test_html_embeds_a_png_chart(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_html(comparison(), path)
    page = path.read_text()
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert match is not None
    assert base64.b64decode(match.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<th>start time</th>" in page


def test_isolation_row_reads_the_claims_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim added to the registry reaches the report with no edit here: unverified, it is missing."""
    extra = claims.Claim("engine_api", "engine API", (6,), "container", "the API answers on its socket")
    monkeypatch.setattr(claims, "CLAIMS", (*claims.CLAIMS, extra))
    text = markdown(comparison(verify={"VM isolation": "passed", "shared kernel and namespaces": "passed",
                                       "cgroups": "passed", "layers": "passed", "hardening": "passed"}))
    assert "| isolation | verified: VM isolation passed | NOT verified: " in text
    assert "hardening passed, engine API missing |" in text


def test_every_registered_claim_is_in_the_isolation_row() -> None:
    text = markdown(comparison())
    row = next(line for line in text.splitlines() if line.startswith("| isolation |"))
    assert all(claim.title in row for claim in claims.CLAIMS)
