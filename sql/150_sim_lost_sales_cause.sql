-- Why a sale was lost: the simulator records, of the units shoppers wanted from an empty shelf,
-- those lost while the product's warehouse was empty too (nothing on its way to the shelf):
-- only a supplier order could have saved them; the others waited for a restock.
ALTER TABLE sim.ledger_daily_sales
    ADD COLUMN IF NOT EXISTS lost_units_wh_empty integer NOT NULL DEFAULT 0;
