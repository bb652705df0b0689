"""Prometheus metrics of challenge delivery, served at `/metrics`.

Latency is measured from the transaction's creation to the device's signed receipt, labeled
with the provider the device says carried the challenge, so it covers the push service's own
delay and not just the time tapgate took to hand the message over.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

PROVIDER_LABELS = ("direct", "relay", "fcm", "apns", "webpush", "poll", "unknown")

DELIVERY_LATENCY = Histogram(
    "tapgate_delivery_latency_seconds",
    "Seconds from a challenge's creation to the device's receipt, by provider.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0),
)
SEND_DURATION = Histogram(
    "tapgate_delivery_send_seconds",
    "Seconds one request to a push service or relay took, by provider.",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SEND_ATTEMPTS = Counter(
    "tapgate_delivery_attempts_total",
    "Requests to push services and relays, by provider and outcome.",
    ["provider", "outcome"],
)


def provider_label(name: str | None) -> str:
    return name if name in PROVIDER_LABELS else "unknown"


async def metrics_endpoint(request: Request) -> Response:
    """Serve every metric of this process in the Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
