"""The plan: create, update, replace, delete, restart and unchanged, with their reasons."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.compiler import Build, compile_spec
from engine.load import load_spec
from engine.plan import Plan, Recorded, Step, levels, make_plan

SPEC = """\
    version: 1
    project: shop
    secrets:
      token: {env: TOKEN}
      hook-secret: {env: HOOK_SECRET}
      other: {env: OTHER}
    apps:
      base:
        routes: [{method: GET, path: /, respond: {json: base}}]
      front:
        depends_on: [base]
        routes: [{method: GET, path: /, respond: {json: front}}]
      fixed:
        port: 18080
        routes: [{method: GET, path: /, respond: {json: fixed}}]
      user:
        depends_on: [fixed]
        routes: [{method: GET, path: /, respond: {json: user}}]
      guarded:
        auth: {bearer: token}
        routes: [{method: GET, path: /, respond: {json: guarded}}]
      hooked:
        webhooks: [{path: /hook, secret: hook-secret, events: {push: {respond: {json: ok}}}}]
      granted:
        secrets: [other]
        routes: [{method: GET, path: /, respond: {json: granted}}]
"""
SECRETS = {"token": "t", "hook-secret": "h", "other": "o"}


def build(tmp_path: Path, text: str = SPEC) -> Build:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return compile_spec(load_spec(path, environ={}))


def recorded(plan: Plan) -> dict[str, Recorded]:
    """The state an apply of `plan` would leave: every app running with its hash and parts."""
    return {
        s.name: Recorded(s.hash, 18080 if s.name == "fixed" else 20000, parts=s.parts)
        for s in plan.steps
    }


def actions(plan: Plan) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {s.name: (s.action, s.reasons) for s in plan.steps}


def test_no_state_creates_everything(tmp_path: Path) -> None:
    plan = make_plan(build(tmp_path), SECRETS, {}, {})
    assert {s.action for s in plan.steps} == {"create"}
    assert len(plan.steps) == 7


def test_same_state_changes_nothing(tmp_path: Path) -> None:
    b = build(tmp_path)
    state = recorded(make_plan(b, SECRETS, {}, {}))
    plan = make_plan(build(tmp_path), SECRETS, state, {})
    assert {s.action for s in plan.steps} == {"unchanged"}
    assert plan.changes == []
    assert plan.render() == f"No changes. Project shop matches {tmp_path / 'spec.yaml'}.\n"


def test_changed_app_on_moving_endpoints_restarts_its_dependents(tmp_path: Path) -> None:
    state = recorded(make_plan(build(tmp_path), SECRETS, {}, {}))
    changed = SPEC.replace("json: base}", "json: base-2}")
    got = actions(make_plan(build(tmp_path, changed), SECRETS, state, {}))
    assert got["base"] == ("replace", ("config changed",))
    assert got["front"] == ("replace", ("base gets a new endpoint",))
    for name in ("fixed", "user", "guarded", "hooked", "granted"):
        assert got[name] == ("unchanged", ()), name


def test_changed_app_on_stable_endpoints_restarts_nothing_else(tmp_path: Path) -> None:
    state = recorded(make_plan(build(tmp_path), SECRETS, {}, {}))
    changed = SPEC.replace("json: base}", "json: base-2}").replace("json: fixed}", "json: f}")
    plan = make_plan(build(tmp_path, changed), SECRETS, state, {}, stable_endpoints=True)
    got = actions(plan)
    assert got["base"] == ("replace", ("config changed",))
    assert got["fixed"] == ("replace", ("config changed",))  # the held socket keeps its port
    assert {n for n, (action, _) in got.items() if action != "unchanged"} == {"base", "fixed"}


def test_reasons_name_the_file_the_env_and_the_secret_that_changed(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text("def hello():\n    return 1\n")
    text = SPEC.replace(
        "respond: {json: base}}]",
        "handler: 'handlers:hello'}]\n        env: {MODE: one}",
    )
    state = recorded(make_plan(build(tmp_path, text), SECRETS, {}, {}))
    (tmp_path / "handlers.py").write_text("def hello():\n    return 2\n")
    changed = text.replace("MODE: one", "MODE: two")
    got = actions(make_plan(build(tmp_path, changed), {**SECRETS, "token": "t2"}, state, {}))
    assert got["base"] == ("replace", ("env changed", "handlers.py changed"))
    assert got["guarded"] == ("replace", ("secret token changed",))


def test_app_removed_from_the_spec_is_deleted(tmp_path: Path) -> None:
    state = recorded(make_plan(build(tmp_path), SECRETS, {}, {}))
    state["gone"] = Recorded("abc", 20001)
    plan = make_plan(build(tmp_path), SECRETS, state, {})
    assert plan.steps[-1] == Step("delete", "app", "gone", None, ("no longer in the spec",))


def test_failed_app_is_restarted(tmp_path: Path) -> None:
    state = recorded(make_plan(build(tmp_path), SECRETS, {}, {}))
    state["granted"] = Recorded(state["granted"].hash, 20000, "failed")
    got = actions(make_plan(build(tmp_path), SECRETS, state, {}))
    assert got["granted"] == ("replace", ("not running (failed)",))


@pytest.mark.parametrize(
    ("secret", "affected"),
    [("token", {"guarded"}), ("hook-secret", {"hooked"}), ("other", {"granted"})],
    ids=["implicit-via-auth", "implicit-via-webhook", "listed-grant"],
)
def test_changed_secret_changes_only_the_apps_granted_it(
    tmp_path: Path, secret: str, affected: set[str]
) -> None:
    b = build(tmp_path)
    before = {s.name: s.hash for s in make_plan(b, SECRETS, {}, {}).steps}
    after = {s.name: s.hash for s in make_plan(b, {**SECRETS, secret: "new"}, {}, {}).steps}
    assert {name for name in before if before[name] != after[name]} == affected
    assert "new" not in str(make_plan(b, {**SECRETS, secret: "new"}, {}, {}).to_dict())


SMALL = """\
    version: 1
    project: tiny
    apps:
      api:
        routes: [{method: GET, path: /, respond: {json: one}}]
      web:
        depends_on: [api]
        routes: [{method: GET, path: /, respond: {json: two}}]
"""


def test_render_exact_text(tmp_path: Path) -> None:
    first = make_plan(build(tmp_path, SMALL), {}, {}, {})
    state = {s.name: Recorded(s.hash, 20000) for s in first.steps}
    state["old-app"] = Recorded("x", 20001)
    plan = make_plan(build(tmp_path, SMALL.replace("json: one", "json: 1")), {}, state, {})
    assert plan.render() == (
        "engine will make these changes to project tiny:\n"
        "\n"
        "  -/+ app api      replace  (changed)\n"
        "  -/+ app web      replace  (api gets a new endpoint)\n"
        "    - app old-app  delete  (no longer in the spec)\n"
        "\n"
        "Plan: 0 to create, 2 to restart (2 replaced side by side), 1 to delete, 0 unchanged.\n"
    )


def test_to_dict_from_dict_round_trip(tmp_path: Path) -> None:
    state = recorded(make_plan(build(tmp_path), SECRETS, {}, {}))
    state["gone"] = Recorded("abc", 20001)
    changed = SPEC.replace("json: base}", "json: base-2}")
    plan = make_plan(build(tmp_path, changed), SECRETS, state, {})
    assert Plan.from_dict(plan.to_dict()) == plan


def test_levels(tmp_path: Path) -> None:
    assert levels(build(tmp_path).spec) == {
        "base": 0,
        "fixed": 0,
        "granted": 0,
        "guarded": 0,
        "hooked": 0,
        "front": 1,
        "user": 1,
    }


TASK_CALLER = """\
    version: 1
    project: shop
    secrets:
      token: {env: TOKEN}
    apps:
      guarded:
        auth: {bearer: token, tasks: [report]}
        routes: [{method: GET, path: /, respond: {json: guarded}}]
    tasks:
      report: {handler: "report:run", depends_on: [guarded]}
      other: {handler: "report:run", depends_on: [guarded]}
"""


def _with_tasks(tmp_path: Path, text: str) -> Build:
    (tmp_path / "report.py").write_text("def run() -> None:\n    pass\n")
    return build(tmp_path, text)


def test_listing_a_task_in_auth_tasks_restarts_the_callee_and_renews_that_task_only(
    tmp_path: Path,
) -> None:
    first = make_plan(_with_tasks(tmp_path, TASK_CALLER), {"token": "t"}, {}, {})
    apps = {s.name: Recorded(s.hash, 20000, parts=s.parts) for s in first.steps if s.kind == "app"}
    tasks = {s.name: Recorded(s.hash, parts=s.parts) for s in first.steps if s.kind == "task"}
    both = TASK_CALLER.replace("tasks: [report]", "tasks: [report, other]")
    plan = make_plan(
        _with_tasks(tmp_path, both), {"token": "t"}, apps, tasks, stable_endpoints=True
    )
    assert actions(plan) == {
        "guarded": ("replace", ("config changed",)),
        "other": ("update", ("credential for guarded added",)),
        "report": ("unchanged", ()),
    }
    spec = _with_tasks(tmp_path, TASK_CALLER)
    rotated = make_plan(spec, {"token": "t2"}, apps, tasks, stable_endpoints=True)
    assert actions(rotated)["report"] == ("update", ("secret token changed",))
    assert actions(rotated)["other"] == ("unchanged", ())
