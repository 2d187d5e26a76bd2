"""The project's ApplySet: apply members, list them, prune what the plan no longer has.

Which objects are stale is read from the cluster, never from a local record: a member is
found by its `applyset.kubernetes.io/part-of` label, a bundle belongs to the app or task
its `app.kubernetes.io/name` label names, and a Secret is in use while some Deployment or
task bundle lists it in its `engine.dev/secrets` annotation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.backends.base import AppUnit, ProjectContext, TaskUnit
from engine.backends.kubernetes import names as n
from engine.backends.kubernetes.api import Cluster, Obj
from engine.backends.kubernetes.manifests import Site, parent, secrets


class ApplySet:
    """The members of one project's ApplySet in one namespace."""

    def __init__(self, cluster: Cluster, site: Site, context: ProjectContext) -> None:
        self.cluster = cluster
        self.site = site
        self.context = context

    async def apply(self, objects: Iterable[Obj]) -> None:
        """Apply each object in order (one server-side apply each). A bundle is immutable and
        named by its version's hash: one that exists already is that version, left as is."""
        for obj in objects:
            if _is_bundle(obj) and await self.cluster.get("ConfigMap", obj["metadata"]["name"]):
                continue
            await self.cluster.apply(obj)

    async def apply_secrets(self, units: Sequence[AppUnit | TaskUnit]) -> None:
        """The parent first (so a pruner knows the member kinds), then the units' Secrets."""
        await self.apply([parent(self.site), *secrets(self.site, units, self.context.api_token)])

    async def neighbour(self) -> str | None:
        """Another engine project living in this namespace, if any: each project needs its
        own, since app names are Service names and Secrets share their names."""
        wanted = {n.COMPONENT: "applyset", n.MANAGED_BY: n.MANAGER}
        projects = {
            p["metadata"]["labels"].get(n.PART_OF, "?")
            for p in await self.cluster.select("ConfigMap", wanted)
        }
        others = sorted(projects - {self.site.project})
        return others[0] if others else None

    async def foreign(self, kind: str, name: str) -> bool:
        """Whether an object `name` of `kind` exists that is not a member of this ApplySet
        (a server-side apply with force would silently take it over)."""
        found = await self.cluster.get(kind, name)
        labels = (found or {}).get("metadata", {}).get("labels") or {}
        return found is not None and labels.get(n.APPLYSET_MEMBER) != self.site.applyset

    async def members(self, kind: str, **labels: str) -> list[Obj]:
        """This ApplySet's members of `kind` with these (standard-label) values."""
        wanted = {n.APPLYSET_MEMBER: self.site.applyset}
        keys = {"name": n.NAME, "component": n.COMPONENT}
        wanted.update({keys[k]: v for k, v in labels.items()})
        return await self.cluster.select(kind, wanted)

    async def prune_bundles(self, kind: str, name: str | None, keep: set[str]) -> list[str]:
        """Delete the bundle ConfigMaps of `kind` (app|task), of `name` or all, not in `keep`."""
        found = await self.members(
            "ConfigMap", component="bundle", **({"name": name} if name else {})
        )
        prefix = f"{kind}-"
        stale = [
            o["metadata"]["name"]
            for o in found
            if o["metadata"]["name"].startswith(prefix) and o["metadata"]["name"] not in keep
        ]
        for obj_name in stale:
            await self.cluster.delete("ConfigMap", obj_name)
        return stale

    async def prune_secrets(self) -> list[str]:
        """Delete the Secrets no Deployment or bundle uses; with nothing left at all, the
        run API token's Secret and the parent too."""
        users = await self.members("Deployment") + await self.members(
            "ConfigMap", component="bundle"
        )
        used = {s for o in users for s in _listed(o)}
        stale = [
            o["metadata"]["name"]
            for o in await self.members("Secret")
            if o["metadata"]["name"] not in used
            and (o["metadata"]["name"] != n.API_TOKEN_SECRET or not users)
        ]
        for name in stale:
            await self.cluster.delete("Secret", name)
        if not users:
            await self.cluster.delete("ConfigMap", n.parent_name(self.site.project))
        return stale


def _is_bundle(obj: Obj) -> bool:
    return obj["kind"] == "ConfigMap" and obj["metadata"]["labels"].get(n.COMPONENT) == "bundle"


def _listed(obj: Obj) -> list[str]:
    text = (obj["metadata"].get("annotations") or {}).get(n.SECRETS, "")
    return [s for s in text.split(",") if s]
