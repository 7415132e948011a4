"""The end of a simulated run: let the platform finish what it decided before the world stops.

When the clock stops, the platform may still be working through the last minutes: refills it
picked, removal orders, deliveries. The world must carry those out, or the ledger and the
platform's state end apart (the warehouse would have shipped units the shelf never received).
Settling repeats until nothing changes: forward every buffered event to Kafka, wait until every
streaming query has read everything its topics hold (`smart_shelf_platform.progress`), then apply
the platform's effects up to the end of their topics. Nothing new happens after the last tick
except what the effects cause (the staff's refill and removal reports, the refill returns those
bring), so this ends in a few rounds. Deciding in rounds, the world meets the platform the
same way at each round's minute (`producers.run.simulate`).
"""

from __future__ import annotations

from collections.abc import Callable

from smart_shelf_platform.progress import read_progress, wait_until_read


def settle(apply_round: Callable[[], int], flush: Callable[[], None], *, redis_client,
           clock_prefix: str, bootstrap: str, progress: Callable[[str], None],
           timeout: float = 600, max_rounds: int = 20) -> int:
    """Repeat until a round changes nothing: `flush` (buffered events to Kafka), wait for the
    streaming queries, `apply_round` (apply the effects read to the end; returns how many
    effects applied plus events emitted). Returns the rounds it took; 0 when no streaming
    query is running (nothing to wait for: the effects read so far are applied once)."""
    if not read_progress(redis_client, clock_prefix):
        apply_round()
        return 0
    for round_no in range(1, max_rounds + 1):
        flush()
        wait_until_read(redis_client, clock_prefix, bootstrap, timeout=timeout,
                        progress=progress)
        if apply_round() == 0:
            return round_no
    raise RuntimeError(f"the platform kept producing effects after {max_rounds} rounds")


def settle_simulation(simulation, feed, writer, *, redis_client, clock_prefix: str,
                      bootstrap: str, progress: Callable[[str], None],
                      timeout: float = 600) -> int:
    """`settle` a `Simulation` whose effects come from `feed` (an `EffectsFeed`) and whose
    events go out through `writer` (a `StreamWriter`)."""
    def flush() -> None:
        writer.flush()
        writer.wait_until_forwarded(timeout)

    def apply_round() -> int:
        emitted = simulation.events_emitted
        applied = simulation.apply_effects(feed.read_to_end())
        return applied + simulation.events_emitted - emitted

    rounds = settle(apply_round, flush, redis_client=redis_client, clock_prefix=clock_prefix,
                    bootstrap=bootstrap, progress=progress, timeout=timeout)
    if rounds:
        progress(f"the platform settled in {rounds} round(s)")
    return rounds
