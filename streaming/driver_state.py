"""State a query keeps on the driver, saved after every micro-batch next to its checkpoint.

For queries whose decisions are made in Python with the pure rules (the alert engines): the
state after batch N is saved as `<checkpoint>/driver_state[/<query>]/<N>.json` once the batch's
outputs are written. Batch N always starts from the newest state saved before N, so a batch that
replays after a crash makes exactly the decisions it made the first time (same ids, same
records) and a restart resumes where the checkpoint says. Local paths only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import orjson


class DriverState:
    def __init__(self, directory: Path, initial: Callable[[], dict], keep: int = 10):
        self.directory = directory
        self.initial = initial
        self.keep = keep
        # The newest saved state as its JSON: loading that is several times faster than a
        # deep copy, and a batch sees exactly what a restarted query would read from disk.
        self._cached: tuple[int, bytes] | None = None

    def _saved(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.stem) for p in self.directory.glob("*.json") if p.stem.isdigit())

    def before(self, batch_id: int) -> dict:
        """A private copy of the state as it was after the newest batch saved before `batch_id`."""
        earlier = [b for b in self._saved() if b < batch_id]
        if not earlier:
            return self.initial()
        newest = earlier[-1]
        if self._cached is not None and self._cached[0] == newest:
            return orjson.loads(self._cached[1])
        return orjson.loads((self.directory / f"{newest}.json").read_bytes())

    def save(self, batch_id: int, state: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{batch_id}.json.tmp"
        saved = orjson.dumps(state)
        tmp.write_bytes(saved)
        os.replace(tmp, self.directory / f"{batch_id}.json")
        self._cached = (batch_id, saved)
        for old in self._saved()[:-self.keep]:
            (self.directory / f"{old}.json").unlink(missing_ok=True)
