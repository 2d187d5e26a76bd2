"""Names, labels and annotations of every object engine puts in a namespace.

Spec names are DNS labels already (the schema says so), so an app's Deployment and
Service are simply named after it and its endpoint is `http://<app>.<namespace>.svc:80`.
Run ids and hashes are not label-safe (too long, or not DNS): they are hashed or cut, and
the real value goes in an annotation.

Every object engine applies is a member of one ApplySet per project (KEP-3659): its parent
is a ConfigMap named `engine-<project>`, members carry `applyset.kubernetes.io/part-of`.
Jobs are not members: they are created per run attempt, never pruned by an apply.
"""

from __future__ import annotations

import base64
import hashlib
import re

MANAGER = "engine"
"""The field manager of every server-side apply, and `app.kubernetes.io/managed-by`."""

PREFIX = "engine.dev"
"""The prefix of engine's own labels and annotations."""

HASH = f"{PREFIX}/hash"
"""Annotation: the plan's hash of the version (on pod templates, bundles and Jobs)."""
VERSION = f"{PREFIX}/version"
"""Label: the first 16 hex digits of the hash, to select one version's pods."""
SECRETS = f"{PREFIX}/secrets"
"""Annotation: the Secrets a Deployment or task bundle uses (so unused ones are pruned)."""
RUN = f"{PREFIX}/run"
"""Label: a Job's hashed run id. The annotation `RUN_ID` holds the id itself."""
RUN_ID = f"{PREFIX}/run-id"
ATTEMPT = f"{PREFIX}/attempt"

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
APP_VERSION = "app.kubernetes.io/version"

APPLYSET_ID = "applyset.kubernetes.io/id"
APPLYSET_MEMBER = "applyset.kubernetes.io/part-of"
APPLYSET_TOOLING = "applyset.kubernetes.io/tooling"
APPLYSET_KINDS = "applyset.kubernetes.io/contains-group-kinds"
MEMBER_KINDS = ("ConfigMap", "Deployment.apps", "Secret", "Service")
"""The group-kinds an ApplySet of engine contains, as the KEP spells them (sorted)."""

API_TOKEN_SECRET = "engine-api-token"
"""The Secret holding the run API's token (key `token`)."""

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_dns_label(name: str) -> bool:
    """RFC 1123 label: what Services, label-selected Jobs and containers must be named."""
    return len(name) <= 63 and bool(_LABEL.match(name))


def is_dns_subdomain(name: str) -> bool:
    """RFC 1123 subdomain: what most objects (ConfigMaps, Secrets, Deployments) may be."""
    return len(name) <= 253 and bool(_SUBDOMAIN.match(name))


def is_label_value(value: str) -> bool:
    """A valid label value: at most 63 characters of `[A-Za-z0-9-_.]`, alphanumeric ends."""
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def short(digest: str, size: int = 16) -> str:
    """The first `size` hex digits of a hash: enough to tell versions apart in a name."""
    return digest[:size]


def parent_name(project: str) -> str:
    """The ApplySet parent ConfigMap of `project`."""
    return f"engine-{project}"


def applyset_id(name: str, namespace: str, kind: str = "ConfigMap", group: str = "") -> str:
    """The KEP-3659 id of the ApplySet whose parent is this object: its name, namespace,
    kind and group, hashed with sha256 and base64url-encoded without padding."""
    gknn = f"{name}.{namespace}.{kind}.{group}"
    encoded = base64.urlsafe_b64encode(hashlib.sha256(gknn.encode()).digest()).rstrip(b"=")
    return f"applyset-{encoded.decode()}-v1"


def secret_name(secret: str) -> str:
    """The Secret holding spec secret `secret` (key `value`)."""
    return f"engine-secret-{secret}"


def bundle_name(kind: str, name: str, hash: str) -> str:
    """The immutable ConfigMap of one version's bundle, named by the plan's hash: a new
    version is a new object (so its pods roll), an old one is pruned once unused. Not by the
    zip's digest: the generated module's header names the spec file's sha256, so editing
    one app would change every app's zip, and roll every app."""
    return f"{kind}-{name}-bundle-{short(hash)}"


def run_hash(run_id: str) -> str:
    """A run id as a label value: run ids need not be valid ones, so they are hashed."""
    return short(hashlib.sha256(run_id.encode()).hexdigest())


def job_name(task: str, run_id: str, attempt: int) -> str:
    """A DNS label for one attempt of a run: `<task>-<run hash>-<attempt>`."""
    tail = f"-{run_hash(run_id)}-{attempt}"
    return f"{task[: 63 - len(tail)].rstrip('-')}{tail}"


def service_url(app: str, namespace: str) -> str:
    """The endpoint every app and task gets for `app`: its Service's cluster DNS name."""
    return f"http://{app}.{namespace}.svc:80"


def labels(project: str, name: str, component: str) -> dict[str, str]:
    """The standard `app.kubernetes.io/*` labels of an object of `project`."""
    return {
        NAME: name,
        INSTANCE: project,
        COMPONENT: component,
        PART_OF: project,
        MANAGED_BY: MANAGER,
    }


def selector(project: str, name: str, component: str) -> dict[str, str]:
    """The labels that pick one app's (or task's) pods: fixed for the object's lifetime."""
    return {NAME: name, INSTANCE: project, COMPONENT: component}
