"""The wire format between tapgate servers, devices and the relay.

Server link (WebSocket at LINK_PATH, `Authorization: Bearer SERVER_ID:KEY`), JSON text frames:

    server -> relay  {"type": "deliver", "id": N, "address": A, "ttl": SECONDS, "sealed": {...}}
    relay -> server  {"type": "ack", "id": N, "result": RESULT, "retry_after": SECONDS?}
    relay -> server  {"type": "device_request", "id": R, "address": A, "kind": "answer" | "receipt",
                      "body": {"message": {...}, "signature": "..."}}
    server -> relay  {"type": "reply", "id": R, "status": HTTP_STATUS, "body": {...}}

Device endpoints (HTTPS on the same port), under MAILBOX_PATH:

    POST   /relay/v1/mailboxes                     {"server": PUBLIC_URL, "wake"?: {...}}
    GET    /relay/v1/mailboxes/{address}/stream    server-sent events "sealed"
    GET    /relay/v1/mailboxes/{address}/messages  {"sealed": [...]} (polling)
    POST   /relay/v1/mailboxes/{address}/answer    a signed answer, forwarded to the server
    POST   /relay/v1/mailboxes/{address}/receipt   a signed receipt, forwarded to the server
    DELETE /relay/v1/mailboxes/{address}
"""

from __future__ import annotations

LINK_PATH = "/relay/v1/link"
MAILBOX_PATH = "/relay/v1/mailboxes"
DEVICE_REQUEST_KINDS = ("answer", "receipt")

# Results of a deliver frame.
DELIVERED = "delivered"  # a device stream took it
WOKEN = "woken"  # no stream was open; a push service accepted a wake-up carrying it
QUEUED = "queued"  # kept until the device connects or polls, or the TTL passes
UNKNOWN_ADDRESS = "unknown_address"  # no such mailbox for this server
RATE_LIMITED = "rate_limited"
INVALID = "invalid"
ACCEPTED_RESULTS = (DELIVERED, WOKEN, QUEUED)

MAX_FRAME_BYTES = 64 * 1024
