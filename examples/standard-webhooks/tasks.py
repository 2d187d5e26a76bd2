"""The task started by `invoice.paid` events."""


def record_payment(invoice: str, amount: int, event_id: str | None = None) -> dict[str, object]:
    """Return what a real handler would store for a paid invoice (amount in cents)."""
    print(f"invoice {invoice} paid: {amount / 100:.2f} (event {event_id})")
    return {"invoice": invoice, "amount": amount, "event_id": event_id, "recorded": True}
