"""One store's shelves with their state, as the store map and the stock page show them."""

from __future__ import annotations

import pandas as pd

from dashboard import data, queries
from dashboard.sources import START, require_rows
from dashboard.ui import Context, of_store


def shelves_of_store(ctx: Context) -> pd.DataFrame:
    """Every shelf of the chosen store with its state (`data.shelf_view`)."""
    s = ctx.settings
    state = require_rows(of_store(queries.table(s, "cleansed/shelf_state"), ctx),
                         f"the shelf state of {ctx.store_id} (Delta cleansed/shelf_state, which "
                         "the streaming application fills when it starts)", START)
    lots = of_store(queries.table(s, "cleansed/shelf_batch_state"), ctx)
    return data.shelf_view(state, queries.catalogue(s), queries.shelf_policies(s), lots,
                           ctx.now.date(), ctx.near_days)
