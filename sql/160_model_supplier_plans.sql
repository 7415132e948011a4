-- Supplier plans made from a cutoff's forecast (SMART_SHELF_SUPPLIER_RULE=forecast) name the
-- model, its version and the quantile of interval demand they order up to; a rule's plans leave
-- them empty.
ALTER TABLE ops.wh_supplier_plan
    ADD COLUMN IF NOT EXISTS model_name text,
    ADD COLUMN IF NOT EXISTS model_version text,
    ADD COLUMN IF NOT EXISTS order_quantile double precision;
