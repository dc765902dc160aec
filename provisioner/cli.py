"""The `lab` command: a thin layer that parses options, calls the use cases, prints."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from .cli_types import LAB_NAME, NODE_NAME
from .console import RichReporter, err_console, out_console, print_json, reports_errors, set_debug
from .images.builder import ImageBuilder
from .images.recipe import DEFAULT_IMAGE, recipe_named
from .images.store import ImageStore
from .lab import access, engine, inspect, lifecycle
from .lab.boot import DEFAULT_TIMEOUT
from .lab.create import CreateOptions, create
from .lab.teardown import ABSENT, REFUSED, destroy, destroy_all
from .paths import images_dir
from .seams import Seams, real_seams
from .state import Ledger


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lab")
@click.option("--debug", is_flag=True, help="On failure show the causes; log SSH commands and libvirt calls.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Labs of QEMU/KVM virtual machines, each with a container engine inside."""
    set_debug(debug)
    if not isinstance(ctx.obj, Seams):  # unit tests pass fakes as the context object
        ctx.obj = real_seams()


@main.command("create")
@click.argument("lab", metavar="LAB")
@click.option("--connect", "connect", metavar="URI", help="libvirt URI (default: embedded driver).")
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True)
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True, help="Seconds per node.")
@click.option("--json", "as_json", is_flag=True, help="Print the lab's ledger as JSON.")
@click.pass_obj
@reports_errors
def create_command(seams: Seams, lab: str, connect: str | None, accel: str, timeout: float, as_json: bool) -> None:
    """Create LAB (a name in labs/ or a path to a lab file) and wait until every node is ready."""
    options = CreateOptions(connect=connect, accel=accel, timeout=timeout)
    with RichReporter() as reporter:
        ledger = create(lab, options, reporter, seams)
    if as_json:
        print_json(json.loads(ledger.model_dump_json()))
        return
    out_console.print(phase_timings_table(ledger))
    total = ledger.timings.get("create", 0.0)
    out_console.print(f"lab [bold]{ledger.name}[/bold] is ready in {total:.1f} s. "
                      f"Try: lab ssh {ledger.name} {next(iter(ledger.nodes))}")


# Each node's boot phases, in the order they happen (boot.py marks them).
PHASES = (("vm_started", "VM started"), ("ssh", "SSH"), ("cloud_init", "cloud-init"),
          ("agent", "agent"), ("containers", "containers"), ("ready", "ready"))


def phase_timings_table(ledger: Ledger) -> Table:
    """When each node reached each phase, in seconds from the start of its boot."""
    table = Table(title="seconds from each node's boot")
    table.add_column("node")
    for _key, title in PHASES:
        table.add_column(title, justify="right")
    for node in ledger.nodes.values():
        table.add_row(node.name, *(f"{node.timings[key]:.1f}" if key in node.timings else "-"
                                   for key, _title in PHASES))
    return table


@main.command("destroy")
@click.argument("lab", type=LAB_NAME, required=False)
@click.option("--all", "everything", is_flag=True, help="Destroy every lab.")
@click.pass_obj
@reports_errors
def destroy_command(seams: Seams, lab: str | None, everything: bool) -> None:
    """Remove a lab's VMs, disks, keys and state; safe to repeat.

    Only what the lab's ledger records is removed, and only a directory holding a ledger
    is touched.
    """
    if everything == bool(lab):
        raise click.UsageError("name one LAB, or pass --all")
    results = destroy_all(seams) if everything else {lab or "": destroy(lab or "", seams)}
    failed = False
    for name, result in results.items():
        problems = escape("; ".join(result.problems))
        if result.outcome == ABSENT:
            out_console.print(f"lab {name}: nothing to destroy")
        elif result.outcome == REFUSED:
            failed = True
            err_console.print(f"lab {name}: not destroyed: {problems}", highlight=False, soft_wrap=True)
        elif result.problems:
            failed = True
            err_console.print(f"lab {name}: destroyed, with problems: {problems}", highlight=False, soft_wrap=True)
        else:
            out_console.print(f"lab {name}: destroyed")
    if failed:
        sys.exit(1)


@main.command("status")
@click.argument("lab", type=LAB_NAME)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@reports_errors
def status_command(seams: Seams, lab: str, as_json: bool) -> None:
    """Each node's state, SSH port, link addresses, boot id, uptime and timings."""
    found = inspect.status(lab, seams)
    if as_json:
        print_json(found.to_dict())
        return
    table = Table(title=f"lab {found.name} ({found.phase}, {found.accel or '?'})")
    for column in ("node", "state", "ssh", "links", "boot id", "uptime", "RSS MiB", "ready s", "containers"):
        table.add_column(column)
    for node in found.nodes:
        links = ", ".join(f"{k} {v}" for k, v in node.addresses.items()) or "-"
        table.add_row(
            node.name, node.state, str(node.ssh_port), links,
            (node.boot_id or "-")[:8], f"{node.uptime_s:.0f} s" if node.uptime_s else "-",
            str(node.rss_mib or "-"), str(node.timings.get("ready", "-")),
            ", ".join(f"{c['name']} ({c['state']})" for c in node.containers) or "-",
        )
    out_console.print(table)


@main.command("list")
@click.option("--json", "as_json", is_flag=True)
@reports_errors
def list_command(as_json: bool) -> None:
    """Every lab on this host."""
    rows = inspect.list_labs()
    if as_json:
        print_json(rows)
        return
    table = Table(title="labs")
    for column in ("name", "phase", "nodes", "libvirt"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["phase"], str(row["nodes"]), row["uri"])
    out_console.print(table)


@main.command("stop")
@click.argument("lab", type=LAB_NAME)
@click.pass_obj
@reports_errors
def stop_command(seams: Seams, lab: str) -> None:
    """Shut the nodes down; their disks stay."""
    with RichReporter() as reporter:
        lifecycle.stop(lab, reporter, seams)


@main.command("start")
@click.argument("lab", type=LAB_NAME)
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True)
@click.pass_obj
@reports_errors
def start_command(seams: Seams, lab: str, timeout: float) -> None:
    """Start stopped nodes, including any killed behind lab's back."""
    with RichReporter() as reporter:
        started = lifecycle.start(lab, reporter, seams, timeout)
    out_console.print(f"started: {', '.join(started) or 'nothing (all running)'}")


@main.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("lab", type=LAB_NAME)
@click.argument("node", type=NODE_NAME)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def ssh_command(lab: str, node: str, command: tuple[str, ...]) -> None:
    """Open a shell on NODE, or run COMMAND there (after --)."""
    tty = not command and sys.stdin.isatty()
    argv = access.ssh_argv(lab, node, list(command), tty)
    os.execvp(argv[0], argv)


@main.command("ssh-config")
@click.argument("lab", type=LAB_NAME)
@reports_errors
def ssh_config_command(lab: str) -> None:
    """An OpenSSH config for the lab, for ssh -F, testinfra and fabric."""
    click.echo(access.ssh_config(lab), nl=False)


@main.command("inventory")
@click.argument("lab", type=LAB_NAME)
@click.option("--format", "style", type=click.Choice(["ansible", "testinfra"]), default="ansible")
@reports_errors
def inventory_command(lab: str, style: str) -> None:
    """An inventory of the lab's nodes for ansible or testinfra."""
    click.echo(access.inventory(lab, style), nl=False)


@main.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("lab", type=LAB_NAME)
@click.argument("words", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--all", "everywhere", is_flag=True, help="Run on every node at once.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@reports_errors
def exec_command(seams: Seams, lab: str, words: tuple[str, ...], everywhere: bool, as_json: bool) -> None:
    """Run a command on NODE, or on every node with --all: lab exec LAB NODE -- CMD."""
    words_list = list(words)
    nodes = None if everywhere else words_list[:1]
    command = words_list if everywhere else words_list[1:]
    if not command:
        raise click.UsageError("give a command after --")
    # Like ssh: the words are joined with spaces and run by the remote shell.
    results = access.execute(lab, nodes, " ".join(command), seams)
    if as_json:
        print_json([vars(result) for result in results])
    else:
        for result in results:
            status = result.error or f"exit {result.exit_code}"
            if len(results) > 1:  # one node prints as plain as ssh would, for pipes
                out_console.rule(f"{result.node}: {escape(status)}", style="green" if result.exit_code == 0 else "red")
            elif result.error:
                err_console.print(f"{result.node}: {escape(result.error)}", highlight=False)
            if result.stdout:
                click.echo(result.stdout, nl=not result.stdout.endswith("\n"))
            if result.stderr:
                click.echo(result.stderr, nl=not result.stderr.endswith("\n"), err=True)
    if len(results) == 1 and results[0].exit_code is not None:
        sys.exit(results[0].exit_code)  # like ssh: the remote command's own status
    if any(result.exit_code != 0 for result in results):
        sys.exit(1)


@main.command("verify")
@click.argument("lab", type=LAB_NAME)
@click.option("-k", "select", metavar="EXPR", help="Only the checks matching EXPR, as pytest -k.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--junit-xml", type=click.Path(path_type=Path), help="Also write a JUnit XML report.")
@click.option("--probe-memory", default="32M", show_default=True, hidden=True)
@click.option("--probe-pid-mode", default="", hidden=True)
@reports_errors
def verify_command(
    lab: str, select: str | None, as_json: bool, junit_xml: Path | None, probe_memory: str, probe_pid_mode: str
) -> None:
    """Prove the lab's isolation claims with pytest-testinfra; exit 0 only if all pass."""
    from .verify.runner import VerifyOptions, verify

    options = VerifyOptions(select, junit_xml, probe_memory, probe_pid_mode)
    with err_console.status(f"verifying lab {lab}"):
        results = verify(lab, options)
    if as_json:
        print_json([vars(result) for result in results])
    else:
        table = Table(title=f"lab verify {lab}")
        for column in ("claim", "check", "result", "detail"):
            table.add_column(column)
        colours = {"passed": "green", "failed": "red", "skipped": "yellow"}
        for result in results:
            outcome = f"[{colours.get(result.outcome, 'white')}]{result.outcome}[/]"
            table.add_row(result.claim, result.name.removeprefix("test_"), outcome, escape(result.message))
        out_console.print(table)
    if not results or any(result.outcome == "failed" for result in results):
        sys.exit(1)


@main.command("report")
@click.argument("lab", type=LAB_NAME)
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Also write an HTML page with a chart.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--runs", default=5, show_default=True, help="Container starts to take the median of.")
@click.pass_obj
@reports_errors
def report_command(seams: Seams, lab: str, html_path: Path | None, as_json: bool, runs: int) -> None:
    """VM versus container, side by side, measured on this lab."""
    from .report.measure import measure
    from .report.render import markdown, write_html

    with err_console.status(f"measuring lab {lab}"):
        comparison = measure(lab, seams, runs)
    if as_json:
        print_json(vars(comparison))
    else:
        click.echo(markdown(comparison), nl=False)
    if html_path:
        write_html(comparison, html_path)
        err_console.print(f"wrote {html_path}")


@main.group("image")
def image_group() -> None:
    """Build, list and remove cached guest images."""


@image_group.command("build")
@click.argument("name", default=DEFAULT_IMAGE)
@click.option("--force", is_flag=True, help="Rebuild even if cached.")
@reports_errors
def image_build(name: str, force: bool) -> None:
    recipe = recipe_named(name)
    with RichReporter() as reporter:
        builder = ImageBuilder(ImageStore(images_dir()), lambda text: reporter.phase("image", text))
        reporter.phase("image", f"{name}: looking in the cache")
        image = builder.build(recipe, force=force)
        reporter.done("image", f"{name} ready ({image.size_bytes() / 2**20:.0f} MiB)")
    out_console.print(f"{image.name}: {image.path}")


@image_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@reports_errors
def image_list(as_json: bool) -> None:
    images = [image.summary() for image in ImageStore(images_dir()).images()]
    if as_json:
        print_json(images)
        return
    table = Table(title="images")
    for column in ("name", "key", "boot", "MiB", "built in"):
        table.add_column(column)
    for row in images:
        table.add_row(row["name"], row["key"], row["boot"], f"{row['size_bytes'] / 2**20:.0f}",
                      f"{row['build_seconds']} s")
    out_console.print(table)


@image_group.command("push")
@click.argument("lab", type=LAB_NAME)
@click.argument("node", type=NODE_NAME)
@click.argument("archive", type=click.Path(path_type=Path))
@click.pass_obj
@reports_errors
def image_push(seams: Seams, lab: str, node: str, archive: Path) -> None:
    """Load a docker-save or OCI-layout tarball into NODE's container engine."""
    out_console.print(engine.push_image(lab, node, archive, seams))


@main.group("agent")
def agent_group() -> None:
    """The guest agent (container engine) in each node."""


@agent_group.command("deploy")
@click.argument("lab", type=LAB_NAME)
@click.pass_obj
@reports_errors
def agent_deploy(seams: Seams, lab: str) -> None:
    """Re-deploy the agent to every node; idempotent, and running containers are kept."""
    for node in engine.deploy_agent(lab, seams):
        out_console.print(f"{node}: guest agent answering")


@image_group.command("rm")
@click.argument("name")
@reports_errors
def image_rm(name: str) -> None:
    count = ImageStore(images_dir()).remove_named(name)
    out_console.print(f"removed {count} image(s) named {name}")


from .cli_docker import register as register_docker  # noqa: E402  (its commands attach to `main`)

register_docker(main)

if __name__ == "__main__":
    main()
