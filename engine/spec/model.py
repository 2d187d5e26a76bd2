"""The validated spec as a typed, frozen model: what every stage after validation reads.

Every reference in a Spec resolves, durations are seconds and sizes are bytes. Maps are
plain dicts, to be treated as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

HEALTH_PATH = "/health"
"""The readiness route every app answers unless its spec says `health:`."""

METRICS_PATH = "/metrics"
"""The Prometheus route every generated app answers unless its spec says `metrics: false`."""
MAX_BODY = 25_000_000
"""A webhook's default `max_body` in bytes (25 MB, GitHub's own limit)."""
DEDUPE_WINDOW = 72 * 3600.0
"""A webhook's default `dedupe` window in seconds (72 h)."""
CONCURRENCY = 2
"""How many runs of one task execute at once by default."""


def env_name(name: str) -> str:
    """The environment variable for a secret or app name: `github-secret` -> `GITHUB_SECRET`."""
    return name.upper().replace("-", "_")


@dataclass(frozen=True)
class SecretSource:
    """Where a secret's value comes from: exactly one of env, file, or a dotenv file's key."""

    name: str
    env: str | None = None
    file: str | None = None
    env_file: str | None = None
    key: str | None = None

    def describe(self) -> str:
        """Human text for where the value is read from, e.g. `environment variable X`."""
        if self.env:
            return f"environment variable {self.env}"
        if self.file:
            return f"file {self.file}"
        return f"key {self.key} of {self.env_file}"


@dataclass(frozen=True)
class Grant:
    """A secret given to an app or task: as `variable`, or as a file named in `variable_FILE`."""

    secret: str
    variable: str
    as_file: bool = False


@dataclass(frozen=True)
class Auth:
    """Who may call: `bearer` (a token) or `api_key` (a header), checked against a secret."""

    kind: Literal["bearer", "api_key"]
    secret: str
    header: str = "Authorization"
    apps: tuple[str, ...] = ()
    """Apps of the project that may call with credentials minted for the pair."""
    tasks: tuple[str, ...] = ()
    """Tasks of the project that may call with credentials minted for the pair."""


@dataclass(frozen=True)
class Credential:
    """What an app or task calls `app` with: a credential minted from `app`'s auth `secret`
    for the pair, delivered to the caller as the secret variable `variable`."""

    app: str
    secret: str
    kind: Literal["bearer", "api_key"]
    header: str
    variable: str


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` per `per` seconds for each key `by` (`client`, `global`,
    `header:NAME`)."""

    requests: int
    per: float
    by: str = "client"


@dataclass(frozen=True)
class HandlerAction:
    """Call the user's function `module:function`."""

    module: str
    function: str

    @property
    def ref(self) -> str:
        return f"{self.module}:{self.function}"


@dataclass(frozen=True)
class RespondAction:
    """Answer a fixed response; strings may hold `${{ }}` expressions."""

    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunAction:
    """Start a run of `task`; `wait` is False, True, or seconds to wait for the result."""

    task: str
    inputs: Any = None
    wait: bool | float = False
    allow: tuple[str, ...] | None = None
    respond: RespondAction | None = None
    failed: RespondAction | None = None


@dataclass(frozen=True)
class ProxyAction:
    """Forward the request to app `app` at `path` (default: the same path); the caller's own
    credentials go along only with `forward_auth`."""

    app: str
    path: str | None = None
    forward_auth: bool = False


Action = HandlerAction | RespondAction | RunAction | ProxyAction


@dataclass(frozen=True)
class Route:
    """One HTTP route. `auth` None means the app's auth applies; `open` means explicitly none."""

    method: str
    path: str
    action: Action
    query: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | bool | None = None
    auth: Auth | None = None
    open: bool = False
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class Webhook:
    """A signed webhook receiver."""

    path: str
    provider: Literal["github", "standard", "plain"]
    secrets: tuple[str, ...] = ()
    events: dict[str, Action] = field(default_factory=dict)
    action: Action | None = None
    max_body: int = MAX_BODY
    dedupe: float = DEDUPE_WINDOW
    auth: Auth | None = None
    open: bool = False
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class WebSocket:
    """A WebSocket endpoint: a built-in `pattern` or the user's `handler`."""

    path: str
    pattern: str | None = None
    handler: HandlerAction | None = None
    source: HandlerAction | None = None
    interval: float = 1.0
    auth: Auth | None = None
    open: bool = False
    heartbeat: float | None = None
    max_message: int | None = None
    max_connections: int | None = None
    allow: tuple[str, ...] | None = None
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class Static:
    """A folder served as-is (a browser page)."""

    path: str
    dir: str


@dataclass(frozen=True)
class App:
    """A long-running HTTP/WebSocket service."""

    name: str
    description: str = ""
    port: int | None = None
    depends_on: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()
    auth: Auth | None = None
    health: str = HEALTH_PATH
    metrics: bool = True
    allowed_hosts: tuple[str, ...] | None = None  # None: the runtime's default (loopback)
    routes: tuple[Route, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    websockets: tuple[WebSocket, ...] = ()
    static: Static | None = None
    command: tuple[str, ...] | str | None = None
    replicas: int = 1
    include: tuple[str, ...] = ()
    endpoint_env: dict[str, str] = field(default_factory=dict)
    """Variables named by `depends_on: [{app, env}]`, app -> variable."""
    rate_limit: RateLimit | None = None
    credentials: tuple[Credential, ...] = ()
    """Credentials for the apps whose `auth.apps` list this one."""

    def all_grants(self) -> tuple[Grant, ...]:
        """The listed grants plus the implicit ones: secrets named by auth and webhooks."""
        granted = {g.secret for g in self.grants}
        implicit = [a.secret for a in self._auths() if a is not None]
        implicit += [s for hook in self.webhooks for s in hook.secrets]
        extra = [Grant(s, env_name(s)) for s in dict.fromkeys(implicit) if s not in granted]
        return self.grants + tuple(extra)

    def hashed_grants(self) -> tuple[Grant, ...]:
        """What the app's version depends on among secrets: its grants, and the secrets its
        minted credentials derive from (rotating one restarts the callers too)."""
        derived = tuple(Grant(c.secret, c.variable) for c in self.credentials)
        return self.all_grants() + derived

    def _auths(self) -> list[Auth | None]:
        endpoints: list[Route | Webhook | WebSocket] = [*self.routes, *self.webhooks]
        endpoints += self.websockets
        return [self.auth, *(e.auth for e in endpoints)]

    @property
    def generated(self) -> bool:
        """Whether engine generates this app's module (False for `command:` apps)."""
        return self.command is None


@dataclass(frozen=True)
class Task:
    """Batch work: `handler` called with validated inputs."""

    name: str
    handler: HandlerAction
    description: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    grants: tuple[Grant, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    timeout: float | None = None
    include: tuple[str, ...] = ()
    concurrency: int = CONCURRENCY
    credentials: tuple[Credential, ...] = ()
    """Credentials for the apps whose `auth.tasks` list this task."""

    endpoint_env: dict[str, str] = field(default_factory=dict)
    """Variables named by `depends_on: [{app, env}]`, app -> variable."""

    def hashed_grants(self) -> tuple[Grant, ...]:
        """What the task's version depends on among secrets: its grants, and the secrets its
        minted credentials derive from (rotating one gives the task fresh workers)."""
        return self.grants + tuple(Grant(c.secret, c.variable) for c in self.credentials)


@dataclass(frozen=True)
class Target:
    """Where a project runs: a backend and its options (unused ones stay None).

    `run_store` is empty for SQLite in `.engine/`, or a PostgreSQL URL.
    """

    name: str
    backend: Literal["local", "ray", "kubernetes"] = "local"
    run_store: str = ""
    run_store_password: str | None = None
    address: str | None = None
    token: str | None = None
    serve_port: int = 8000
    replica_cpus: float = 0.25
    host: str | None = None
    namespace: str | None = None
    context: str | None = None
    image: str | None = None


LOCAL = Target("local")
"""The target that always exists: this machine, runs in SQLite."""


@dataclass(frozen=True)
class Spec:
    """A whole validated spec. `targets` always holds `local`."""

    version: int
    project: str
    path: Path
    sha256: str
    secrets: dict[str, SecretSource] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    apps: dict[str, App] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=lambda: {"local": LOCAL})

    @property
    def root(self) -> Path:
        """The spec's folder: the working directory and import root of every process."""
        return self.path.parent
