"""Alert identity and lifecycle: deterministic ids, cooldown, open -> acknowledged -> resolved.

An alert episode starts when a condition becomes true and ends when it is resolved; its id is
derived from what it is about and when the episode opened, so a replay produces the same id and
the lifecycle steps of one alert always carry that id: a replay cannot split one alert in two.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

ALERT_NAMESPACE = uuid.UUID("a7d3c1b2-4e5f-5a6b-8c7d-9e0f1a2b3c4d")
DEFAULT_COOLDOWN = timedelta(minutes=60)

# status -> statuses it may move to
TRANSITIONS = {
    "open": {"acknowledged", "resolved", "dismissed"},
    "acknowledged": {"resolved", "dismissed"},
    "resolved": set(),
    "dismissed": set(),
}


def _stage_order() -> dict[str, int]:
    """Lifecycle position of each status, from the transition table (`ops.alert_stage` in
    sql/130_alerts_furthest_step.sql must agree; a test holds them together)."""
    order: dict[str, int] = {}

    def walk(status: str, depth: int) -> None:
        order[status] = max(order.get(status, 0), depth)
        for nxt in TRANSITIONS[status]:
            walk(nxt, depth + 1)

    walk("open", 0)
    return order


STAGE = _stage_order()


def furthest_step(current: dict | None, step: dict) -> dict:
    """An alert after one more lifecycle step: the step when it is further on (or the same
    status, later), else the alert as it was; either way with the earliest `created_at`. So
    steps that arrive twice or out of order never move an alert back (the Postgres mirror's
    trigger, sql/130_alerts_furthest_step.sql, applies the same rule)."""
    if current is None:
        return step
    later = STAGE[step["status"]] > STAGE[current["status"]] or (
        step["status"] == current["status"] and step["updated_at"] > current["updated_at"])
    return (step if later else current) | {
        "created_at": min(current["created_at"], step["created_at"])}


def alert_id(alert_type: str, store_id: str, shelf_id: str, location: str,
             opened_at: datetime) -> str:
    """The same alert episode always gets the same id."""
    stamp = opened_at.replace(microsecond=0).isoformat()
    return str(uuid.uuid5(ALERT_NAMESPACE,
                          f"{alert_type}:{store_id}:{shelf_id}:{location}:{stamp}"))


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, set())


def should_open(condition: bool, active_since: datetime | None, last_resolved: datetime | None,
                now: datetime, cooldown: timedelta = DEFAULT_COOLDOWN) -> bool:
    """Open a new episode when the condition holds, no episode is active, and the last one was
    resolved more than `cooldown` ago (so a flapping shelf does not flood the alerts)."""
    if not condition or active_since is not None:
        return False
    return last_resolved is None or now - last_resolved >= cooldown


def alert_step(condition: bool, episode_active: bool, last_resolved: datetime | None,
               now: datetime, cooldown: timedelta = DEFAULT_COOLDOWN) -> str | None:
    """What an alert engine does now: "open" a new episode, "resolve" the active one, or None.

    An active episode stays open while its condition holds (later updates never re-alert) and
    is resolved as soon as it clears; a new one opens only after the cooldown.
    """
    if episode_active:
        return None if condition else "resolve"
    return "open" if should_open(condition, None, last_resolved, now, cooldown) else None
