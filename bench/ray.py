"""The Ray target against plain Ray, on one private Ray head, in the same run:

1. requests/s of a generated app on Serve (the quickstart's `GET /`) against a
   hand-written Serve deployment of the same route (a FastAPI app in a class), both
   reached through the Serve proxy by the same client;
2. a trivial task run's submit-to-finished time through the engine's job executor
   against a bare Ray job submission (`POST /api/jobs/` with `python -c pass`, polled).

    python bench/ray.py [--seconds 5] [--concurrency 8] [--runs 5]

Needs `pip install -e '.[test,ray]'`. Traffic goes to 127.0.0.1 only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import table  # noqa: E402

from engine.backends.base import Attempt  # noqa: E402
from engine.backends.ray.config import zip_entries  # noqa: E402
from engine.backends.ray.dashboard import Dashboard  # noqa: E402
from tests.ray.conftest import copy_project, load, on_ray  # noqa: E402
from tests.ray.head import Head, ray_head  # noqa: E402

HAND_WRITTEN = """\
from fastapi import FastAPI
from ray import serve

api = FastAPI()


@api.get("/")
def hello(name: str = "world") -> dict:
    return {"message": f"Hello, {name}!"}


@serve.deployment
@serve.ingress(api)
class Hand:
    pass


app = Hand.bind()
"""

SPEC = """\
version: 1
project: bench-ray
apps:
  hello:
    routes:
      - method: GET
        path: /
        query:
          name: {type: string, default: world}
        handler: handlers:hello
tasks:
  noop:
    handler: handlers:noop
"""
HANDLERS = """\
def hello(name: str = "world") -> dict:
    return {"message": f"Hello, {name}!"}


def noop() -> dict:
    return {}
"""


async def load_test(url: str, seconds: float, concurrency: int) -> float:
    """Requests/s of `concurrency` clients looping on `url` for `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=64)) as http:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await http.get(url)
                response.raise_for_status()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


async def deploy_hand_written(dashboard: Dashboard, head: Head, current: dict) -> None:
    data = zip_entries([("hand.py", HAND_WRITTEN.encode())])
    uri = "gcs://_ray_pkg_bench_hand_written.zip"
    await dashboard.ensure_package(uri, data)
    apps = [a["deployed_app_config"] for a in current["applications"].values()]
    apps.append(
        {
            "name": "bench-hand",
            "route_prefix": "/hand",
            "import_path": "hand:app",
            "runtime_env": {"working_dir": uri},
            "deployments": [{"name": "Hand", "ray_actor_options": {"num_cpus": 0.25}}],
        }
    )
    config = {"http_options": {"host": "127.0.0.1", "port": head.serve_port}}
    await dashboard.put_serve_config({**config, "applications": apps})
    for _ in range(240):
        status = (await dashboard.serve_details())["applications"]["bench-hand"]["status"]
        if status == "RUNNING":
            return
        await asyncio.sleep(0.25)
    raise RuntimeError("the hand-written deployment did not start")


async def bare_job(dashboard: Dashboard, number: int) -> float:
    """Submit-to-finished of `python -c pass` as a plain Ray job."""
    submission = f"bench-bare-{number}"
    start = time.perf_counter()
    await dashboard.submit_job(
        {"submission_id": submission, "entrypoint": f"{sys.executable} -c pass"}
    )
    while (await dashboard.job(submission) or {}).get("status") not in ("SUCCEEDED", "FAILED"):
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - start
    await dashboard.delete_job(submission)
    return elapsed


def row(label: str, ours: float, theirs: float, unit: str) -> list[str]:
    return [label, f"{ours:.2f} {unit}", f"{theirs:.2f} {unit}", f"{ours / theirs:.2f}"]


async def bench(head: Head, folder: Path, args: argparse.Namespace) -> None:
    source = folder / "src"
    source.mkdir()
    (source / "spec.yaml").write_text(SPEC)
    (source / "handlers.py").write_text(HANDLERS)
    spec = copy_project(source, folder / "project")
    project = on_ray(load(spec), head, folder / "state")
    dashboard = Dashboard(head.address, head.token)
    try:
        await project.apply()
        await deploy_hand_written(dashboard, head, await dashboard.serve_details())
        base = f"http://127.0.0.1:{head.serve_port}"
        for url in (f"{base}/hello/", f"{base}/hand/"):  # warm both up
            await load_test(url, 1, 2)
        generated = await load_test(f"{base}/hello/", args.seconds, args.concurrency)
        hand = await load_test(f"{base}/hand/", args.seconds, args.concurrency)
        rows = [row(f"GET / via Serve, {args.concurrency} clients", generated, hand, "req/s")]

        ours, bare = [], []
        await bare_job(dashboard, 0)  # warm the job path up
        for number in range(1, args.runs + 1):
            start = time.perf_counter()
            result = await project.executor.run(Attempt(f"b{number}", "noop", 1, {}))
            assert result.outputs == {}, result
            ours.append(time.perf_counter() - start)
            bare.append(await bare_job(dashboard, number))
        median = statistics.median
        rows.append(row(f"trivial run, median of {args.runs}", median(ours), median(bare), "s"))
        header = ["measure", "engine on Ray", "plain Ray", "ratio"]
        print(table("Ray target (req/s: higher is better; run time: lower)", header, rows))
    finally:
        await dashboard.close()
        await project.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="engine-ray-bench-") as name,
        ray_head(Path(name)) as head,
    ):
        asyncio.run(bench(head, Path(name), args))


if __name__ == "__main__":
    main()
