"""Send a signed Standard Webhooks event to a URL, for trying the example locally.

    python send_event.py URL [TYPE]

The secret (whsec_<base64>) is read from BILLING_WEBHOOK_SECRET. The signature is
`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the base64-decoded secret.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid


def main() -> None:
    """Sign and post one event; print the status and the answer."""
    url = sys.argv[1]
    kind = sys.argv[2] if len(sys.argv) > 2 else "invoice.paid"
    body = json.dumps({"type": kind, "data": {"id": "in_123", "amount": 4200}}).encode()
    key = base64.b64decode(os.environ["BILLING_WEBHOOK_SECRET"].removeprefix("whsec_"))
    msg_id = f"msg_{uuid.uuid4().hex}"
    stamp = str(int(time.time()))
    signed = f"{msg_id}.{stamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": f"v1,{signature}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        print(error.code, error.read().decode())


if __name__ == "__main__":
    main()
