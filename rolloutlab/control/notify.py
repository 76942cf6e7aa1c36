"""Notifications from a rollout: decisions (promote, rollback) and failures.

A notifier is anything with ``notify(event)`` (:class:`Notifier`). Delivery is best
effort: a notifier must not raise, because a chat outage must never stop a rollout
that is moving production traffic; :class:`SlackNotifier` logs its errors instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import requests

from rolloutlab.config import redact, remember_secret
from rolloutlab.sources.prometheus import Deadline, DeadlineAdapter

log = logging.getLogger(__name__)

EventKind = Literal["promote", "rollback", "failure", "halt"]

_ICONS: dict[str, str] = {
    "promote": ":white_check_mark:",
    "rollback": ":rotating_light:",
    "failure": ":warning:",
    "halt": ":pause_button:",
}


@dataclass(frozen=True)
class Event:
    """Something people should hear about: what happened to which rollout, and why.

    ``rollout`` names it (``namespace/target``), ``weight`` is the canary weight after
    the event, ``message`` one plain sentence.
    """

    kind: EventKind
    rollout: str
    message: str
    weight: int | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """One chat line: icon, rollout, what happened, weight (credentials redacted)."""
        weight = "" if self.weight is None else f" (canary weight {self.weight}%)"
        line = f"{_ICONS[self.kind]} rollout {self.rollout}: {self.kind}: {self.message}{weight}"
        return redact(line)


class Notifier(Protocol):
    """Receives rollout events; must not raise."""

    def notify(self, event: Event) -> None: ...


class SlackNotifier:
    """Posts each event to a Slack incoming webhook as ``{"text": ...}``.

    ``timeout`` bounds each post in total (connect, headers, body), so a webhook that
    answers byte by byte cannot hold up the rollout that notifies. Errors (unreachable,
    timeout, non-2xx answer) are logged as warnings, never raised.
    """

    def __init__(self, webhook_url: str, *, timeout: float = 5.0) -> None:
        self.webhook_url = remember_secret(webhook_url)
        self.timeout = timeout
        self._session = requests.Session()
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, DeadlineAdapter())

    def __repr__(self) -> str:
        return f"SlackNotifier(<webhook>, timeout={self.timeout})"  # the URL is a secret

    def notify(self, event: Event) -> None:
        late = requests.Timeout(f"no answer within {self.timeout:g} s")
        try:
            with Deadline(self.timeout, late):
                response = self._session.post(
                    self.webhook_url, json={"text": event.text}, timeout=self.timeout
                )
        except requests.Timeout:
            log.warning("Slack notification failed (%s): %s", late, event.text)
            return
        except requests.RequestException as exc:
            log.warning("Slack notification failed (%s): %s", type(exc).__name__, event.text)
            return
        if not response.ok:
            log.warning(
                "Slack notification rejected (HTTP %s %s): %s",
                response.status_code,
                response.text[:200],
                event.text,
            )
