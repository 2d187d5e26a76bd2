"""Tasks of the golden spec."""


def add_one(x: int) -> dict[str, int]:
    return {"y": x + 1}


def deploy(commit: str) -> dict[str, str]:
    return {"deployed": commit}
