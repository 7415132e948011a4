"""What every page shares: the settings, the banner for a missing source, the store picker and
the simulated time on top."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.sources import SIMULATE, Unavailable
from smart_shelf_platform.rules.expiry import NEAR_EXPIRY_DAYS_STORE
from smart_shelf_platform.settings import Settings, get_settings

REFRESH_SECONDS = 5  # how often the live parts of a page redraw themselves


@dataclass(frozen=True)
class Context:
    settings: Settings
    store_id: str | None
    now: datetime  # simulated

    @property
    def near_days(self) -> int:
        """A shelf lot expiring within this many days is near expiry, as the platform's
        near-expiry alerts count it."""
        return NEAR_EXPIRY_DAYS_STORE


def banner(problem: Unavailable) -> None:
    st.warning(f"{problem.what} Run `{problem.command}`.", icon=":material/warning:")


@contextmanager
def needs_sources() -> Iterator[None]:
    """A part of a page: when a source it reads is missing, a banner replaces it."""
    try:
        yield
    except Unavailable as problem:
        banner(problem)


def _store_ids(s: Settings) -> list[str]:
    try:
        return queries.stores(s)["store_id"].tolist()
    except Unavailable:  # without Postgres: the stores the platform holds state for
        try:
            return sorted(queries.table(s, "cleansed/shelf_state",
                                        columns=("store_id",))["store_id"].unique())
        except Unavailable:
            return []


def _simulated_now(s: Settings) -> datetime:
    try:
        now = queries.sim_now(s)
    except Unavailable as problem:
        banner(problem)
        now = None
    else:
        if now is None:
            st.info(f"The simulated clock has not run yet. Run `{SIMULATE}`.",
                    icon=":material/schedule:")
    return now or s.sim_start


def header() -> None:
    """The store picker and the simulated time, above every page; the page reads them with
    `context()`."""
    s = get_settings()
    left, right = st.columns([1, 2])
    stores = _store_ids(s)
    store = left.selectbox("Store", stores, key="store_id",
                           placeholder="no store yet") if stores else None
    now = _simulated_now(s)
    right.metric("Simulated time", now.strftime("%a %Y-%m-%d %H:%M UTC"))
    st.session_state["context"] = Context(s, store, now)


def context() -> Context:
    return st.session_state["context"]


def of_store(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    return frame[frame["store_id"] == ctx.store_id]


def store_table(ctx: Context, path: str) -> pd.DataFrame:
    """The chosen store's rows of a Delta table (`queries.table`)."""
    return queries.table(ctx.settings, path, ctx.store_id)
