"""The catalog's handlers. Its auth (the spec's `auth:`) is checked before they run."""

from pydantic import BaseModel, Field

ITEMS = {"kettle": 25, "teapot": 18}


class Order(BaseModel):
    """An order as the catalog accepts it; anything else is answered 422."""

    item: str
    quantity: int = Field(default=1, ge=1)


def list_items() -> dict[str, object]:
    """Every item with its price."""
    return {"items": [{"name": name, "price": price} for name, price in ITEMS.items()]}


def place_order(body: Order) -> dict[str, object]:
    """Price an order (the body arrives validated, as an Order)."""
    price = ITEMS.get(body.item)
    if price is None:
        return {"accepted": False, "reason": f"no item {body.item!r}"}
    return {"accepted": True, "item": body.item, "total": price * body.quantity}
