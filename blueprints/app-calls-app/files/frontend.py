"""The frontend app's handlers: they call the backend at the URL engine injected.

The backend's name comes from BACKEND_APP (set in the spec), so that the same code works
when the blueprint is used with another name or a prefix.
"""

import os

import httpx

from engine.runtime import endpoint


async def summary() -> dict[str, object]:
    """Fetch the backend's items and summarise them."""
    base = endpoint(os.environ["BACKEND_APP"])
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        response = await client.get("/items")
        response.raise_for_status()
    items = response.json()["items"]
    return {
        "count": len(items),
        "total_price": sum(item["price"] for item in items),
        "names": [item["name"] for item in items],
    }
