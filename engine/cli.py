"""The `engine` command line: a thin layer over the Python API.

Every EngineError becomes a message and an exit code here, in one place; a user never sees
a traceback unless they ask for one with `--debug`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from engine import __version__
from engine.cli_support import (
    DURATION,
    HEALTH_TIMEOUT_OPTION,
    TARGET_OPTION,
    project_option,
    resolve_spec,
    spec_options,
    state_text,
)
from engine.errors import EngineError, SpecError, UsageError
from engine.resources import schema_path


class EngineGroup(click.Group):
    """Runs a command and turns engine's errors into messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpecError as exc:
            if _wants_json():
                errors = [d.to_dict() for d in exc.diagnostics]
                _print_json({"error": "invalid spec", "errors": errors})
            else:
                for diagnostic in exc.diagnostics:
                    click.echo(str(diagnostic), err=True)
            ctx.exit(1)
        except EngineError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            if _wants_json():
                _print_json({"error": str(exc)})
            else:
                click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # the reader left (`engine runs | head`): stop quietly
            with contextlib.suppress(OSError, ValueError):  # no flush error at exit either
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug in engine: say so in one line, not a traceback
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(
                f"internal error: {type(exc).__name__}: {exc}\n"
                "This is a bug in engine. Run the command again with --debug for the "
                "traceback, and report it with that output.",
                err=True,
            )
            ctx.exit(2)


def _wants_json() -> bool:
    """Whether the command was given --json: its errors are then JSON too, on stdout."""
    return "--json" in sys.argv[1:]


@click.group(
    cls=EngineGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="engine")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Describe apps, webhooks, WebSockets and tasks in YAML; validate, build and run them.

    \b
    Start here:
      engine new quickstart myproject   scaffold a project from a blueprint
      engine validate spec.yaml         check a spec, with file:line:col for each problem
      engine apply spec.yaml            start everything, in dependency order
      engine status                     what runs and where
    """
    from engine.layout import keep_files_private

    keep_files_private()  # .engine/ holds run data, logs and the API token
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@main.command()
@spec_options
@click.option(
    "--target",
    "target",
    default=None,
    metavar="NAME",
    help="Also check what this target cannot run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(
    spec: Path | None,
    spec_file: Path | None,
    directory: Path | None,
    target: str | None,
    as_json: bool,
) -> None:
    """Check a spec; print each problem with its file, line and column.

    Each problem is printed as `file:line:col: json.path: message`, all of them at once;
    the exit code is 1 if there is any.
    """
    from engine.load import check_spec

    spec = resolve_spec(spec, spec_file, directory)
    try:
        checked = check_spec(spec, target=target)
    except SpecError as exc:
        if not as_json:
            raise
        _print_json({"valid": False, "errors": [d.to_dict() for d in exc.diagnostics]})
        sys.exit(1)
    if as_json:
        warnings = [d.to_dict() for d in checked.warnings]
        _print_json({"valid": True, "errors": [], "warnings": warnings})
        return
    for warning in checked.warnings:
        click.echo(f"{warning} (warning)", err=True)
    s = checked.spec
    click.echo(f"{spec}: valid ({_count(len(s.apps), 'app')}, {_count(len(s.tasks), 'task')})")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the spec language."""
    click.echo(schema_path().read_text(encoding="utf-8"), nl=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


@main.command()
@spec_options
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the generated modules (default: .engine/build beside the spec).",
)
@click.option(
    "--templates",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A folder of templates that replace the built-in ones of the same name.",
)
def build(
    spec: Path | None,
    spec_file: Path | None,
    directory: Path | None,
    output: Path | None,
    templates: Path | None,
) -> None:
    """Generate each app's FastAPI module from SPEC; start nothing.

    Each app's module is written to OUTPUT/<app>/_engine_app.py. The same spec always
    gives the same bytes.
    """
    from engine.compiler import compile_spec, write_build
    from engine.load import load_spec

    loaded = load_spec(resolve_spec(spec, spec_file, directory))
    out = output or loaded.root / ".engine" / "build"
    for path in write_build(compile_spec(loaded, templates), out):
        click.echo(str(path))


@main.command()
@spec_options
@TARGET_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan to a file."
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to change, 2 when there is, 1 on error.",
)
def plan(
    spec: Path | None,
    spec_file: Path | None,
    directory: Path | None,
    target: str | None,
    as_json: bool,
    out: Path | None,
    detailed_exitcode: bool,
) -> None:
    """Show what apply would create, restart or delete, and why.

    A saved plan (-o plan.json) can be applied with `engine apply plan.json`; it is refused
    if the spec or the running system changed since.
    """
    from engine.project import Project

    spec = resolve_spec(spec, spec_file, directory)
    result, warnings = Project.of_spec(spec, target).plan(spec)
    for warning in warnings:
        click.echo(f"{warning} (warning)", err=True)
    if out:
        out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if as_json:
        _print_json(result.to_dict())
    else:
        click.echo(result.render(), nl=False)
        if out:
            click.echo(f"Saved the plan to {out}; apply it with: engine apply {out}")
    if detailed_exitcode and result.changes:
        sys.exit(2)


@main.command()
@spec_options
@TARGET_OPTION
@HEALTH_TIMEOUT_OPTION
@click.option(
    "--wait-lock", is_flag=True, help="Wait for another apply to finish instead of failing."
)
def apply(
    spec: Path | None,
    spec_file: Path | None,
    directory: Path | None,
    target: str | None,
    timeout: float,
    wait_lock: bool,
) -> None:
    """Start or update everything in a spec, or in a saved plan.

    SPEC is the spec (a file, or a folder holding spec.yaml) or a saved plan (plan.json).
    Apps start in dependency order, each once the apps it depends on are healthy; a second
    apply of the same spec changes nothing. A changed app is replaced side by side, at the
    same URL: the old version serves until the new one is healthy, and stays if the new
    one fails.
    """
    from engine.project import Project, load_saved_plan

    expect = None
    spec = resolve_spec(spec, spec_file, directory)
    if spec.suffix == ".json":
        spec, expect = load_saved_plan(spec)
    project = Project.of_spec(spec, target)
    events = project.apply(spec, expect=expect, health_timeout=timeout, wait_lock=wait_lock)
    sys.exit(0 if _show_apply(events) else 1)


def _show_apply(events: Any) -> bool:
    """Print apply progress as it streams in; return whether it succeeded.

    Ctrl-C stops watching (exit 130) and says what was still starting: the control plane
    finishes the apply on its own.
    """
    ok = False
    starting: set[str] = set()
    try:
        for event in events:
            ok = _show_event(event, starting) or ok
    except KeyboardInterrupt:
        waiting = ", ".join(sorted(starting)) or "nothing"
        click.echo(
            f"\ninterrupted; still starting: {waiting}. The control plane finishes the apply: "
            "see `engine status`.",
            err=True,
        )
        sys.exit(130)
    return ok


def _show_event(event: Any, starting: set[str]) -> bool:
    """Print one apply event; True if it is the end of an apply that succeeded."""
    from engine.events import DoneEvent, ErrorEvent, PlanEvent, StepEvent, WarningsEvent

    if isinstance(event, ErrorEvent):
        for line in event.errors:
            click.echo(line, err=True)
    elif isinstance(event, WarningsEvent):
        for line in event.warnings:
            click.echo(f"{line} (warning)", err=True)
    elif isinstance(event, PlanEvent):
        click.echo(event.text, nl=False)
    elif isinstance(event, StepEvent):
        (starting.add if event.status == "starting" else starting.discard)(event.name)
        line = f"  {event.kind} {event.name}: {state_text(event.status)}"
        if event.url:
            line += f"  {event.url}"
        click.echo(line)
        if event.error:
            click.echo(_indent(event.error), err=True)
    elif isinstance(event, DoneEvent):
        _show_apps(event.apps)
        click.echo(f"\nConsole: {event.console}")
        click.echo("Apply complete." if event.ok else "Apply failed: see the errors above.")
        return event.ok
    return False


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def _show_apps(apps: Any) -> None:
    """The apps as a table: name, state, URL, pid and restarts."""
    if not apps:
        click.echo("\nNo apps.")
        return
    width = max(len(a.name) for a in apps)
    urls = max(len(a.url or "-") for a in apps)
    click.echo("")
    click.echo(f"  {'APP'.ljust(width)}  {'STATE':<9}  {'URL'.ljust(urls)}  {'PID':>7}  RESTARTS")
    for app in apps:
        pid = str(app.pid) if app.pid else "-"
        where = (app.url or "-").ljust(urls)
        state = state_text(str(app.state), 9)
        click.echo(f"  {app.name.ljust(width)}  {state}  {where}  {pid:>7}  {app.restarts}")
        if app.detail and not app.ok:
            click.echo(_indent(app.detail.splitlines()[0]))


PROJECT_OPTION = project_option


def _project(directory: Path | None, target: str | None) -> Any:
    from engine.project import Project

    return Project.find(directory, target)


@main.command()
@PROJECT_OPTION
@TARGET_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(directory: Path | None, target: str | None, as_json: bool) -> None:
    """Show the project's apps: state, URL, pid and restarts.

    If the control plane died, it is started again and re-adopts the apps still running.
    """
    project = _project(directory, target)
    result = project.status()
    if as_json:
        _print_json(result.to_json())
        return
    if result.control_plane is None:
        click.echo(f"Nothing runs in {project.root}; start it with `engine apply SPEC`.")
        return
    click.echo(f"Project {result.project}; console: {project.console_link()}")
    _show_apps(result.apps)


@main.command()
@click.argument("app")
@PROJECT_OPTION
@TARGET_OPTION
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they come.")
@click.option("-n", "--tail", type=int, default=100, show_default=True, help="Lines to show.")
def logs(app: str, directory: Path | None, target: str | None, follow: bool, tail: int) -> None:
    """Print APP's log (its stdout and stderr).

    `engine logs control-plane` prints the engine's own log.
    """
    from engine.errors import ControlPlaneError

    try:
        for line in _project(directory, target).logs(app, tail, follow):
            click.echo(line, nl=False)
    except ControlPlaneError as exc:
        if "(HTTP 404)" in str(exc):
            raise UsageError(str(exc).removesuffix(" (HTTP 404)")) from exc
        raise


@main.command()
@click.argument("spec", type=click.Path(path_type=Path), default=None, required=False)
@PROJECT_OPTION
@TARGET_OPTION
def destroy(spec: Path | None, directory: Path | None, target: str | None) -> None:
    """Stop every app of the project, then its control plane.

    SPEC (or its folder) names the project; without it, -C or the current folder. Only
    processes engine started (checked by pid and start time) are stopped; the run history
    stays.
    """
    from engine.project import Project

    if spec is not None:  # named: found even when its .engine/ is gone
        project = Project.at(spec if spec.is_dir() else spec.resolve().parent, target)
    else:
        project = _project(directory, target)
    result = project.destroy()
    if result.swept:
        click.echo(
            f"Stopped {result.swept} process(es) of the project that its state no longer "
            "knew of (found by the project's marker)."
        )
    if result.stopped:
        click.echo(f"Destroyed project in {project.root}: no app is running.")
    else:
        click.echo(f"Nothing to destroy in {project.root}: no app is running.")


def _convert(key: str, text: str, schema: dict[str, Any]) -> Any:
    """`x=41` is 41 when x is an integer; objects and arrays are JSON; the rest stays text."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if kinds == ["string"]:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        if kind is None or "string" in kinds:
            return text
        raise click.BadParameter(f"{key}={text}: expected {kind}", param_hint="-i") from None
    return value


@main.command()
@click.argument("task")
@PROJECT_OPTION
@TARGET_OPTION
@click.option("-i", "--input", "pairs", multiple=True, metavar="KEY=VALUE", help="An input.")
@click.option(
    "--input-file",
    type=click.File("r"),
    help="A JSON file of inputs (-i values are added on top).",
)
@click.option("--wait", is_flag=True, help="Wait for the run; print its outputs as JSON.")
@click.option(
    "--timeout", type=DURATION, default=None, help="With --wait: give up after this long (e.g. 2m)."
)
def run(
    task: str,
    directory: Path | None,
    target: str | None,
    pairs: tuple[str, ...],
    input_file: Any,
    wait: bool,
    timeout: float | None,
) -> None:
    """Start a run of TASK by hand.

    For example, `engine run add-one -i x=41 --wait`. Values are converted by the task's
    input schema: `x=41` is the integer 41 when x is an integer. With --wait the exit code
    is non-zero unless the run succeeded.
    """
    import time

    project = _project(directory, target)
    inputs = json.load(input_file) if input_file else {}
    schema = project.task_inputs(task) if pairs else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-i")
        inputs[key] = _convert(key, value, schema.get(key, {}))
    started = project.run(task, inputs)
    if not wait:
        click.echo(f"Started run {started['id']} of {task}: {started['url']}")
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    current = started
    while current["status"] in ("queued", "running"):
        left = 60.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if deadline is not None and left == 0:
            click.echo(f"run {current['id']} is still {current['status']}", err=True)
            sys.exit(1)
        current = project.wait(started["id"], left)
    if current["status"] == "succeeded":
        _print_json(current["outputs"])
        return
    click.echo(f"run {current['id']} {current['status']}: {current.get('error')}", err=True)
    click.echo(f"logs: engine run-logs {current['id']}; page: {current['url']}", err=True)
    sys.exit(1)


@main.command()
@PROJECT_OPTION
@TARGET_OPTION
@click.option("--task", help="Only runs of this task.")
@click.option(
    "--status",
    type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]),
    help="Only runs in this state.",
)
@click.option("--limit", type=int, default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def runs(
    directory: Path | None,
    target: str | None,
    task: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the latest runs, newest first."""
    result = _project(directory, target).runs(task, status, limit)
    if as_json:
        _print_json(result)
        return
    if not result:
        click.echo("No runs.")
        return
    width = max(4, *(len(r["task"]) for r in result))
    click.echo(
        f"{'RUN':<12}  {'TASK'.ljust(width)}  {'STATUS':<10}  {'CREATED':<19}  DURATION  OUTPUTS"
    )
    for item in result:
        created = (item["created_at"] or "")[:19].replace("T", " ")
        status = state_text(item["status"], 10)
        shown = (
            json.dumps(item["outputs"]) if item["outputs"] is not None else (item["error"] or "")
        )
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        click.echo(
            f"{item['id']:<12}  {item['task'].ljust(width)}  {status}  {created:<19}  "
            f"{_duration(item):>8}  {shown}"
        )


def _duration(run: dict[str, Any]) -> str:
    """How long a run took (or has been running), as `1.2s`, `3m04s`; `-` before it starts."""
    from datetime import UTC, datetime

    if not run.get("started_at"):
        return "-"
    start = datetime.fromisoformat(run["started_at"])
    end = (
        datetime.fromisoformat(run["finished_at"]) if run.get("finished_at") else datetime.now(UTC)
    )
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


@main.command("run-logs")
@click.argument("run_id")
@PROJECT_OPTION
@TARGET_OPTION
def run_logs(run_id: str, directory: Path | None, target: str | None) -> None:
    """Print what RUN_ID's task wrote to stdout and stderr."""
    click.echo(_project(directory, target).run_logs(run_id), nl=False)


@main.command()
@click.argument("run_id")
@PROJECT_OPTION
@TARGET_OPTION
def cancel(run_id: str, directory: Path | None, target: str | None) -> None:
    """Cancel a queued or running run."""
    run = _project(directory, target).cancel(run_id)
    click.echo(f"Run {run['id']} of {run['task']} is {run['status']}.")


@main.command()
@spec_options
@click.option("--target", "target", required=True, metavar="NAME", help="The target to render for.")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The folder to write into (created if missing).",
)
def render(
    spec: Path | None, spec_file: Path | None, directory: Path | None, target: str, output: Path
) -> None:
    """Write what a target would be given, without contacting it.

    For `kubernetes` the manifests (one object per document); for `ray` the Serve config
    and the job submissions. The same spec gives the same bytes; no secret value appears
    except inside Kubernetes Secrets.
    """
    from engine.render import render_target

    for path in render_target(resolve_spec(spec, spec_file, directory), target, output):
        click.echo(str(path))


def _register_new() -> None:
    from engine.cli_dev import dev
    from engine.cli_new import new
    from engine.cli_store import store

    main.add_command(new)
    main.add_command(dev)
    main.add_command(store)


_register_new()

if __name__ == "__main__":
    main()
