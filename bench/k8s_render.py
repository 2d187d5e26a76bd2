"""`engine render --target k8s` of 8 apps (a dependency chain, each with a secret and 3
routes) and 2 tasks: units to manifest bytes, best of 20.

Baseline, in the same run: dumping the very same (already built) objects with PyYAML's
libyaml dumper, with the same options: the floor any renderer that writes YAML pays.
Target (issue 17): 8 apps render in under 200 ms.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import table

from engine.backends.base import ProjectContext
from engine.backends.kubernetes import render
from engine.backends.kubernetes.manifests import Site, objects
from engine.compiler import compile_spec
from engine.load import load_spec
from engine.plan import make_plan
from engine.spec.model import Target
from engine.units import build_units

APPS = 8
REPEAT = 20
TARGET = Target("k8s", backend="kubernetes", namespace="bench", image="engine-runtime:bench")


def write_project(folder: Path) -> Path:
    lines = ["version: 1", "project: bench-k8s", "secrets:"]
    lines += [f"  key-{i}: {{env: KEY_{i}}}" for i in range(APPS)]
    lines.append("apps:")
    for i in range(APPS):
        lines += [f"  app-{i}:", f"    secrets: [key-{i}]"]
        if i:
            lines.append(f"    depends_on: [app-{i - 1}]")
        lines.append("    routes:")
        lines += [f"      - {{method: GET, path: /r{r}, handler: 'h:hello'}}" for r in range(3)]
    lines += ["tasks:"]
    lines += [f"  task-{t}: {{handler: 'h:work', timeout: 60}}" for t in range(2)]
    (folder / "h.py").write_text("def hello():\n    return {}\n\ndef work():\n    return 1\n")
    spec = folder / "spec.yaml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def best(call: object) -> float:
    fastest = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as name:
        spec = load_spec(write_project(Path(name)), environ={})
        secrets = {s: f"value-{s}" for s in spec.secrets}
        build = compile_spec(spec)
        units = build_units(build, secrets, make_plan(build, secrets, {}, {}))
        context = ProjectContext(spec.project, spec.root, "http://engine:8765", "token")
        ours = best(lambda: render(TARGET, units, context))
        site = Site.of(TARGET, context)
        found = objects(site, list(units.apps.values()), list(units.tasks.values()), context)
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        options = {"sort_keys": True, "default_flow_style": False, "width": 1000}
        floor = best(lambda: [yaml.dump(o, Dumper=dumper, **options) for o in found])
    ratio = ours / floor
    rows = [
        ("engine render (8 apps, 2 tasks)", f"{ours * 1000:.1f} ms", "target < 200 ms"),
        ("yaml.dump (libyaml) of the same objects", f"{floor * 1000:.1f} ms", "floor"),
        ("ratio", f"{ratio:.2f}x", ""),
    ]
    print(table("k8s render", ("what", "best of 20", "note"), rows))
    return {"render_ms": ours * 1000, "ratio_to_dump": ratio}


if __name__ == "__main__":
    main()
