"""One store's shelves with their state, as the store map and the stock page show them."""

from __future__ import annotations

import pandas as pd

from dashboard import data, queries
from dashboard.sources import START, require_rows
from dashboard.ui import Context, store_table


def shelves_of_store(ctx: Context) -> pd.DataFrame:
    """Every shelf of the chosen store with its state (`data.shelf_view`)."""
    s = ctx.settings
    state = require_rows(store_table(ctx, "cleansed/shelf_state"),
                         f"the shelf state of {ctx.store_id} (Delta cleansed/shelf_state, which "
                         "the streaming application fills when it starts)", START)
    lots = store_table(ctx, "cleansed/shelf_batch_state")
    return data.shelf_view(state, queries.catalogue(s), queries.shelf_policies(s), lots,
                           ctx.now.date(), ctx.near_days)
