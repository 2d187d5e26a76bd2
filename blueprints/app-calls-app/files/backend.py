"""The backend app's handlers: a tiny in-memory catalogue."""

from fastapi import HTTPException

ITEMS = {
    "1": {"id": "1", "name": "kettle", "price": 25},
    "2": {"id": "2", "name": "teapot", "price": 18},
}


def list_items() -> dict[str, list[dict[str, object]]]:
    """Every item."""
    return {"items": list(ITEMS.values())}


def get_item(item_id: str) -> dict[str, object]:
    """One item by id; 404 if there is none (path values arrive as strings)."""
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail=f"no item {item_id}")
    return ITEMS[item_id]
