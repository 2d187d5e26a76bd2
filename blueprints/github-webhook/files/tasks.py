"""The deploy task: a stand-in that returns what a real deploy would do."""


def deploy(commit: str, ref: str, delivery: str | None = None) -> dict[str, str | None]:
    """Return the commit and branch a real deploy would roll out."""
    branch = ref.removeprefix("refs/heads/")
    print(f"deploying {commit[:7]} from {branch} (delivery {delivery})")
    return {"deployed": commit, "branch": branch, "delivery": delivery}
