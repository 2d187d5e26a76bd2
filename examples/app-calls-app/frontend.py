"""The frontend app's handlers: they call backend at the URL engine injected."""

import httpx

from engine.runtime import endpoint


def whoami() -> dict[str, str]:
    """Report where this app finds backend (BACKEND_ENDPOINT, via endpoint())."""
    return {"app": "frontend", "backend": endpoint("backend")}


async def summary() -> dict[str, object]:
    """Fetch backend's items and summarise them."""
    async with httpx.AsyncClient(base_url=endpoint("backend"), timeout=10) as client:
        response = await client.get("/items")
        response.raise_for_status()
    items = response.json()["items"]
    return {
        "count": len(items),
        "total_price": sum(item["price"] for item in items),
        "names": [item["name"] for item in items],
    }
