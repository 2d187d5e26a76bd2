"""The storefront's handler: it calls the catalog from Python."""

import os

import engine.runtime


async def summary() -> dict[str, object]:
    """Count the catalog's items. `client()` knows the catalog's URL and credential."""
    async with engine.runtime.client("catalog") as catalog:
        response = await catalog.get("/items")
        response.raise_for_status()
    items = response.json()["items"]
    return {
        "count": len(items),
        "names": [item["name"] for item in items],
        "catalog": os.environ["CATALOG_URL"],  # the variable the spec named
    }
