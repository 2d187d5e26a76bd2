"""Send a signed, GitHub-shaped delivery to a webhook URL, for trying the example locally.

    python send_event.py URL [EVENT] [DELIVERY_ID]

The secret is read from GITHUB_WEBHOOK_SECRET, as engine reads it; the body is signed the
way GitHub signs it (X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>).
"""

import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

# The fields GitHub sends in every push (of the many it sends), as it sends them.
PAYLOADS = {
    "push": {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "created": False,
        "deleted": False,
        "forced": False,
    },
    "ping": {"zen": "Keep it logically awesome.", "hook_id": 1},
}


def main() -> None:
    """Sign and post one delivery; print the status and the answer."""
    url = sys.argv[1]
    event = sys.argv[2] if len(sys.argv) > 2 else "push"
    delivery = sys.argv[3] if len(sys.argv) > 3 else str(uuid.uuid4())
    body = json.dumps(PAYLOADS.get(event, {"action": "opened"})).encode()
    secret = os.environ["GITHUB_WEBHOOK_SECRET"].encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        print(error.code, error.read().decode())


if __name__ == "__main__":
    main()
