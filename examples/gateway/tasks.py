"""The restock task."""


def restock(item: str, quantity: int) -> dict[str, object]:
    """Pretend to order `quantity` of `item` from the supplier."""
    return {"item": item, "quantity": quantity}
