"""The comparison as Markdown, and as an HTML page with a chart (matplotlib)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from ..verify import claims
from .measure import Comparison, median


def verified(comparison: Comparison, titles: tuple[str, ...]) -> str:
    """The last verdicts of these claims (from the registry); one not in verify.json is missing."""
    outcomes = [comparison.verify.get(title) for title in titles]
    if not comparison.verify:
        return "not verified yet (run `lab verify`)"
    if all(outcome == "passed" for outcome in outcomes):
        return "verified: " + ", ".join(titles) + " passed"
    return "NOT verified: " + ", ".join(f"{t} {o or 'missing'}" for t, o in zip(titles, outcomes, strict=True))


def rows(c: Comparison) -> list[tuple[str, str, str]]:
    return [
        ("start time", f"{median(c.vm_ready_s):.1f} s boot to ready (median of {len(c.vm_ready_s)} nodes)",
         f"{c.container_start_s * 1000:.0f} ms create+start (median; bare crun {c.crun_start_s * 1000:.0f} ms)"),
        ("memory footprint", f"{median(c.vm_rss_mib):.0f} MiB QEMU RSS per node",
         f"{c.container_memory_mib:.2f} MiB memory.current of an idle busybox"),
        ("disk", f"{c.vm_disk_mib:.0f} MiB base image plus overlay",
         f"{c.container_disk_mib:.2f} MiB layers plus upper dir"),
        ("kernel", f"each VM has its own ({c.vm_boot_ids} distinct boot ids on {c.vm_nodes} nodes)"
         if c.vm_boot_ids == c.vm_nodes else f"NOT distinct: {c.vm_boot_ids} boot ids on {c.vm_nodes} nodes",
         f"shared with the node ({c.kernel_release})" if c.container_kernel_shared else "NOT the node's kernel"),
        ("isolation", verified(c, claims.titles("vm")), verified(c, claims.titles("container"))),
    ]


def markdown(c: Comparison) -> str:
    lines = [f"# lab {c.lab}: VM vs container (measured on node {c.node})", "",
             "| | VM | container |", "|---|---|---|"]
    lines += [f"| {name} | {vm} | {container} |" for name, vm, container in rows(c)]
    ratio = median(c.vm_ready_s) / c.container_start_s if c.container_start_s else float("nan")
    lines += ["", f"A container starts {ratio:.0f}x faster than a VM boots on this machine."]
    return "\n".join(lines) + "\n"


def chart_png(c: Comparison) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figures = [("start time (s)", median(c.vm_ready_s), c.container_start_s),
               ("memory (MiB)", median(c.vm_rss_mib), c.container_memory_mib),
               ("disk (MiB)", c.vm_disk_mib, c.container_disk_mib)]
    figure, axes = pyplot.subplots(1, 3, figsize=(11, 3.6))
    for axis, (title, vm, container) in zip(axes, figures, strict=True):
        bars = axis.bar(["VM", "container"], [vm, container], color=["#4c72b0", "#dd8452"])
        axis.set_yscale("log")
        axis.set_title(title)
        axis.bar_label(bars, labels=[f"{vm:.3g}", f"{container:.3g}"])
    figure.suptitle(f"lab {c.lab}: VM vs container (log scale)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot.close(figure)
    return buffer.getvalue()


def write_html(c: Comparison, path: Path) -> None:
    image = base64.b64encode(chart_png(c)).decode()
    table = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(vm)}</td><td>{html.escape(container)}</td></tr>"
        for name, vm, container in rows(c)
    )
    path.write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>lab {html.escape(c.lab)}: VM vs container</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:.4em}"
        "table{border-collapse:collapse}</style>"
        f"<h1>lab {html.escape(c.lab)}: VM vs container</h1>"
        f"<img alt='VM vs container chart' src='data:image/png;base64,{image}'>"
        f"<table><tr><th></th><th>VM</th><th>container</th></tr>{table}</table>"
    )
