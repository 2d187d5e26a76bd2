"""`uses:` in a spec: expansion in place, prefixes, collisions and positioned errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.load import check_spec
from engine.spec.loader import load_file

ECHO_MANIFEST = """
name: echo
description: One app answering a fixed JSON, and a task it starts.
parameters:
  type: object
  properties:
    app: {type: string, default: echo, description: The app's name.}
    port: {type: [integer, "null"], default: null, description: A fixed port.}
    word: {type: string, default: hi, description: What it answers.}
"""

ECHO_TEMPLATE = """
secrets:
  token: {env: ECHO_TOKEN}
apps:
  {{ app }}:
{% if port is not none %}
    port: {{ port }}
{% endif %}
    auth: {bearer: token}
    depends_on: [{{ app }}-backend]
    routes:
      - method: GET
        path: /
        respond: {json: {word: {{ word | tojson }}, q: "${{ query.q }}"}}
      - method: POST
        path: /run
        run: {task: work, allow: [work]}
      - method: GET
        path: /other
        proxy: {app: {{ app }}-backend}
  {{ app }}-backend:
    routes:
      - {method: GET, path: /other, respond: {json: {ok: true}}}
tasks:
  work:
    handler: tasks:work
    depends_on: [{{ app }}]
    secrets: [token]
"""


@pytest.fixture
def echo(make_blueprint) -> Path:
    return make_blueprint("echo", ECHO_MANIFEST, ECHO_TEMPLATE)


def test_uses_expands_in_place(echo: Path, write_spec) -> None:
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: echo
            with: {word: hello}
    """)
    loaded = check_spec(spec).spec
    assert sorted(loaded.apps) == ["echo", "echo-backend"]
    assert sorted(loaded.tasks) == ["work"]
    assert sorted(loaded.secrets) == ["token"]


def test_expanded_document_has_no_uses_and_positions_at_the_entry(echo: Path, write_spec) -> None:
    from engine.blueprints import expand

    doc = load_file(
        write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: echo
    """)
    )
    assert expand(doc) == []
    assert "uses" not in doc.data
    mark = doc.mark(("apps", "echo", "routes", 0, "path"))
    assert (mark.line, mark.col) == (4, 5)
    respond = doc.data["apps"]["echo"]["routes"][0]["respond"]
    assert respond == {"json": {"word": "hi", "q": "${{ query.q }}"}}


def test_prefix_renames_names_and_references(echo: Path, write_spec) -> None:
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - {blueprint: echo}
          - {blueprint: echo, prefix: two-}
    """)
    loaded = check_spec(spec).spec
    assert sorted(loaded.apps) == ["echo", "echo-backend", "two-echo", "two-echo-backend"]
    assert sorted(loaded.tasks) == ["two-work", "work"]
    assert sorted(loaded.secrets) == ["token", "two-token"]
    doc = load_file(spec)
    from engine.blueprints import expand

    expand(doc)
    app = doc.data["apps"]["two-echo"]
    assert app["auth"] == {"bearer": "two-token"}
    assert app["depends_on"] == ["two-echo-backend"]
    assert app["routes"][1]["run"] == {"task": "two-work", "allow": ["two-work"]}
    assert app["routes"][2]["proxy"] == {"app": "two-echo-backend"}
    task = doc.data["tasks"]["two-work"]
    assert task["depends_on"] == ["two-echo"]
    assert task["secrets"] == ["two-token"]


def test_prefix_leaves_references_to_the_users_own_names(make_blueprint, write_spec) -> None:
    make_blueprint(
        "hook",
        """
        name: hook
        parameters:
          type: object
          properties: {task: {type: string}}
          required: [task]
        """,
        """
        apps:
          receiver:
            routes:
              - {method: POST, path: /, run: {task: {{ task }}}}
        """,
    )
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - {blueprint: hook, with: {task: deploy}, prefix: gh-}
        tasks:
          deploy: {handler: "tasks:deploy"}
    """)
    doc = load_file(spec)
    from engine.blueprints import expand

    assert expand(doc) == []
    assert doc.data["apps"]["gh-receiver"]["routes"][0]["run"] == {"task": "deploy"}
    assert sorted(check_spec(spec).spec.tasks) == ["deploy"]


def test_two_expansions_of_one_name_is_an_error_naming_both(echo: Path, write_spec) -> None:
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: echo
          - blueprint: echo
            with: {app: other}
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    messages = [str(d) for d in caught.value.diagnostics]
    assert messages == [
        f"{spec}:5:5: uses[1]: uses[1] (blueprint 'echo') creates secret 'token', which "
        "uses[0] (blueprint 'echo') at line 4 already has; rename one, or give the blueprint "
        "a different `prefix:`",
        f"{spec}:5:5: uses[1]: uses[1] (blueprint 'echo') creates task 'work', which "
        "uses[0] (blueprint 'echo') at line 4 already has; rename one, or give the blueprint "
        "a different `prefix:`",
    ]


def test_expansion_colliding_with_the_spec_names_the_spec(echo: Path, write_spec) -> None:
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - {blueprint: echo, prefix: a-}
        apps:
          a-echo:
            routes: [{method: GET, path: /, respond: {json: 1}}]
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{spec}:4:5: uses[0]: uses[0] (blueprint 'echo') creates app 'a-echo', which "
        "the spec itself (line 6) already has; rename one, or give the blueprint a different "
        "`prefix:`"
    ]


def test_bad_with_value_is_positioned_at_the_value(echo: Path, write_spec) -> None:
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: echo
            with:
              port: eighty
              wrod: typo
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{spec}:6:13: uses[0].with.port: 'eighty' is not of type 'integer', 'null'",
        f"{spec}:7:7: uses[0].with.wrod: blueprint 'echo' has no parameter 'wrod'; "
        "did you mean 'word'?",
    ]


def test_missing_required_parameter_is_positioned_at_the_entry(make_blueprint, write_spec):
    make_blueprint(
        "needs",
        """
        name: needs
        parameters:
          type: object
          properties: {task: {type: string, description: The task to start.}}
          required: [task]
        """,
        "apps: {}\n",
    )
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: needs
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{spec}:4:5: uses[0]: blueprint 'needs' needs the parameter 'task' (The task to start.)"
    ]


def test_unknown_blueprint_suggests_a_close_name(write_spec) -> None:
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: quickstrat
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{spec}:4:16: uses[0].blueprint: unknown blueprint 'quickstrat'; "
        "did you mean 'quickstart'?"
    ]


def test_expressions_pass_through_and_may_hold_parameters(make_blueprint, write_spec) -> None:
    make_blueprint(
        "expr",
        """
        name: expr
        parameters:
          type: object
          properties: {field: {type: string, default: after}}
        """,
        """
        apps:
          web:
            routes:
              - method: POST
                path: /
                respond:
                  json:
                    whole: "${{ body }}"
                    field: "${{ body.{{ field }} }}"
                    both: "{{ field }}=${{ body['{{ field }}'] }}"
                    raw: "{% raw %}{{ not jinja }}{% endraw %}"
        """,
    )
    doc = load_file(
        write_spec("""
        version: 1
        project: shop
        uses: [{blueprint: expr}]
    """)
    )
    from engine.blueprints import expand

    assert expand(doc) == []
    assert doc.data["apps"]["web"]["routes"][0]["respond"]["json"] == {
        "whole": "${{ body }}",
        "field": "${{ body.after }}",
        "both": "after=${{ body['after'] }}",
        "raw": "{{ not jinja }}",
    }


def test_undeclared_parameter_is_an_error_at_the_blueprint_line(make_blueprint, write_spec):
    folder = make_blueprint(
        "broken",
        """
        name: broken
        parameters: {type: object, properties: {app: {type: string, default: web}}}
        """,
        """
        apps:
          {{ app }}:
            description: {{ colour }}
        """,
    )
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: broken
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{folder / 'spec.yaml.j2'}:3:1: $: template error: 'colour' is undefined; declare it "
        "under `parameters` in the blueprint's blueprint.yaml (with a default if it is "
        "optional) (from blueprint 'broken' used at spec.yaml:4)"
    ]


def test_schema_error_in_the_fragment_points_at_the_rendered_line(make_blueprint, write_spec):
    folder = make_blueprint(
        "badport",
        """
        name: badport
        parameters: {type: object, properties: {port: {default: high}}}
        """,
        """
        apps:
          web:
            port: {{ port }}
        """,
    )
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: badport
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.file, diagnostic.line, diagnostic.col) == (
        str(folder / "spec.yaml.j2"),
        3,
        11,
    )
    assert diagnostic.path == "apps.web.port"
    assert diagnostic.message.endswith(" (from blueprint 'badport' used at spec.yaml:4)")


def test_fragment_with_a_top_level_key_it_may_not_hold(make_blueprint, write_spec) -> None:
    folder = make_blueprint("proj", "name: proj\n", "project: other\napps: {}\n")
    spec = write_spec("""
        version: 1
        project: shop
        uses: [{blueprint: proj}]
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert [str(d) for d in caught.value.diagnostics] == [
        f"{folder / 'spec.yaml.j2'}:1:1: project: a blueprint's fragment holds only secrets, "
        "tasks, apps (from blueprint 'proj' used at spec.yaml:3)"
    ]


def test_cross_check_error_after_merge_is_positioned_at_the_entry(echo: Path, write_spec):
    spec = write_spec("""
        version: 1
        project: shop
        uses:
          - blueprint: echo
        tasks:
          mine: {handler: "tasks:mine", depends_on: [nowhere]}
    """)
    with pytest.raises(SpecError) as caught:
        check_spec(spec)
    assert [d.line for d in caught.value.diagnostics] == [6]
