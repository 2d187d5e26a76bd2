"""The deploy task: a stand-in that returns what a real deploy would do."""


def deploy(
    commit: str, ref: str, deleted: bool | None = False, delivery: str | None = None
) -> dict[str, str | bool | None]:
    """Return the commit and ref a real deploy would roll out; nothing for a deletion."""
    if deleted:
        print(f"{ref} was deleted: nothing to deploy (delivery {delivery})")
        return {"deployed": None, "ref": ref, "skipped": "ref deleted", "delivery": delivery}
    if not ref.startswith("refs/heads/"):
        print(f"{ref} is not a branch: nothing to deploy (delivery {delivery})")
        return {"deployed": None, "ref": ref, "skipped": "not a branch", "delivery": delivery}
    branch = ref.removeprefix("refs/heads/")
    print(f"deploying {commit[:7]} from {branch} (delivery {delivery})")
    return {"deployed": commit, "branch": branch, "delivery": delivery}
