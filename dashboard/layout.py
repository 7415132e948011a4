"""The store's floor plan (`store_layout.yaml`): one rectangular zone per product category."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

LAYOUT_FILE = Path(__file__).with_name("store_layout.yaml")


@dataclass(frozen=True)
class Rect:
    label: str  # the category of a zone, the name of a fixture
    x: float
    y: float
    w: float
    h: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass(frozen=True)
class FloorPlan:
    width: float
    height: float
    zones: tuple[Rect, ...]
    fixtures: tuple[Rect, ...]

    @property
    def categories(self) -> list[str]:
        return [z.label for z in self.zones]


@cache
def floor_plan(path: Path = LAYOUT_FILE) -> FloorPlan:
    raw = yaml.safe_load(path.read_text())
    return FloorPlan(
        raw["width"], raw["height"],
        tuple(Rect(z["category"], z["x"], z["y"], z["w"], z["h"]) for z in raw["zones"]),
        tuple(Rect(f["label"], f["x"], f["y"], f["w"], f["h"]) for f in raw.get("fixtures", ())))
