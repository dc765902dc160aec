"""What the CLI prints for people: tables built from the ledger."""

from __future__ import annotations

from rich.console import Console

from provisioner.cli import phase_timings_table
from provisioner.state import Ledger, NodeRecord


def test_create_prints_each_nodes_phase_timings() -> None:
    def node(name: str, timings: dict[str, float]) -> NodeRecord:
        return NodeRecord(name=name, domain=f"lab-t-{name}", ssh_port=40000, mac="52:54:00:00:00:01",
                          overlay="o", seed="s", console_log="c", host_key="k", memory_mib=512,
                          cpus=1, image="debian-12", timings=timings)

    ledger = Ledger(name="t", uri="qemu:///embed?root=x", source="t.yaml", instance="i", nodes={
        "node1": node("node1", {"vm_started": 0.4, "ssh": 19.84, "cloud_init": 21.9, "agent": 25.0,
                                "containers": 26.25, "ready": 26.25}),
        "node2": node("node2", {"vm_started": 0.5, "ssh": 20.0, "cloud_init": 22.0, "agent": 24.0,
                                "ready": 24.0}),
    })
    console = Console(record=True, width=120)
    console.print(phase_timings_table(ledger))
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in console.export_text().splitlines() if "node" in line and "│" in line}

    assert rows["node1"] == ["0.4", "19.8", "21.9", "25.0", "26.2", "26.2"]
    assert rows["node2"] == ["0.5", "20.0", "22.0", "24.0", "-", "24.0"]
