"""Webhook notifications: when a flow run ends Failed, Crashed (or is Late), POST a JSON body.

``prefect-like notify create --on failed --webhook URL [--flow NAME | --tag T | --deployment N]``
stores one on the tracking server; the server's scheduler loop finds the runs it matches
(``tracking.control``: each run's state notified once, whichever server sees it first) and
``send`` delivers them off the loop, retried with tenacity (a 5xx, a 429 or a connection error
is tried again, with backoff; a 4xx is not).

Secrets stay out of logs and answers: a webhook URL often holds a token in its path or query
(Slack's, Discord's) or a password before its host, so everything but its scheme and host is
shown as ``***`` (``redact``), in log lines and in ``notify ls`` alike.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
import tenacity

log = logging.getLogger("prefect_like.notify")

ATTEMPTS = 4


def redact(url: str) -> str:
    """The URL with its credentials, path and query hidden: ``https://hooks.example/***``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


class _Retry(Exception):
    pass


def send(webhook: str, body: dict[str, Any], *, attempts: int = ATTEMPTS, timeout: float = 10.0) -> bool:
    """POST ``body`` as JSON to ``webhook``; True once it answered 2xx. Failures are logged
    with the URL redacted, never raised: a notification must not stop the scheduler."""
    shown = redact(webhook)
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=0.5, max=8.0),
        retry=tenacity.retry_if_exception_type((_Retry, httpx.TransportError)),
        reraise=True,
    )
    try:
        with httpx.Client(timeout=timeout) as client:
            for attempt in retrying:
                with attempt:
                    response = client.post(webhook, json=body)
                    if response.status_code >= 500 or response.status_code == 429:
                        raise _Retry(f"HTTP {response.status_code}")
                    if response.status_code >= 300:
                        log.warning("notification for flow run %s: %s answered HTTP %d; not retried",
                                    body.get("flow_run_id"), shown, response.status_code)
                        return False
    except (_Retry, httpx.HTTPError) as exc:
        # str(exc) of an httpx error can hold the URL: only its kind is said.
        reason = str(exc) if isinstance(exc, _Retry) else type(exc).__name__
        log.warning("notification for flow run %s: POST to %s failed after %d attempts (%s)",
                    body.get("flow_run_id"), shown, attempts, reason)
        return False
    log.info("notification for flow run %s (%s) sent to %s", body.get("flow_run_id"), body.get("state_name"), shown)
    return True


__all__ = ["redact", "send"]
