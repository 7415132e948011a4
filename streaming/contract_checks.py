"""Contract checks of Kafka records: each record read with its contract's schema and every way
it breaks that contract named, as pure DataFrame -> DataFrame functions that tests call on tiny
static frames with Kafka's columns.

`parse_events` turns Kafka rows into one column per field of the contract; every row keeps where
it came from (`_source`, `_partition`, `_offset`, `_kafka_ts`), the original text (`_payload`) and
`_reason`: null when the row honours its contract, otherwise a readable list of what is wrong
(field by field, receipt lines too; stores and shelves the platform was not set up with). Checks
that need more than the record add to the same column with `append_reason` (the clock's bounds in
`clock_checks`, where warehouse units and receipt lots come from in `provenance`). The query
shell (`shell.py`) sends the rows with a reason to the dead letters and hands the others
(`valid_rows`) to its query. docs/architecture.md, "How each holds", lists the reasons.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from smart_shelf_platform.contracts.types import Field, Record
from smart_shelf_platform.rules.pricing import MAX_DISCOUNT

META_COLUMNS = ("_source", "_partition", "_offset", "_kafka_ts", "_payload", "_reason")
REASON = "_reason"

# The values a field may take, by field name, in every contract and in receipt lines: (lowest,
# highest or None). The contract language has no ranges, so they live here.
FIELD_RANGES = {
    "quantity": (0, None), "total_items": (1, None), "trip_duration_minutes": (0, None),
    "unit_price": (0, None), "total_price": (0, None), "total_amount": (0, None),
    "speed": (0, None), "discount": (0, MAX_DISCOUNT),
    # By the name reasons give them: a receipt line sells at least one unit (a shelf event's
    # quantity may be 0: a restocker reports 0 units placed on a full shelf).
    "items[].quantity": (1, None),
}

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_CORRUPT = "_corrupt"

# JSON kind (as `schema_of_variant` names it) each logical kind accepts, and how a reason names it.
_INTEGER_KINDS = r"^(TINYINT|SMALLINT|INT|BIGINT|DECIMAL\(\d+,0\))$"
_NUMBER_KINDS = r"^(TINYINT|SMALLINT|INT|BIGINT|DECIMAL\(\d+,\d+\)|FLOAT|DOUBLE)$"
_JSON_KIND = {
    "string": ("^STRING$", "a string"), "enum": ("^STRING$", "a string"),
    "json": ("^STRING$", "a string"), "uuid": ("^STRING$", "a uuid"),
    "timestamp": ("^STRING$", "an ISO-8601 timestamp"), "date": ("^STRING$", "an ISO-8601 date"),
    "int": (_INTEGER_KINDS, "an integer"), "long": (_INTEGER_KINDS, "an integer"),
    "double": (_NUMBER_KINDS, "a number"), "decimal": (_NUMBER_KINDS, "a number"),
    "bool": ("^BOOLEAN$", "a boolean"), "array": ("^ARRAY", "an array"),
}


def parse_events(raw: DataFrame, record: Record, *,
                 known_shelves: DataFrame | None = None) -> DataFrame:
    """Kafka rows -> one column per field of `record`, the provenance columns and `_reason`.

    The value is parsed twice: with `from_json(record.spark_schema())` for the typed columns, and as
    a VARIANT to see what the JSON really holds, so a field that is absent ("missing field x") is
    told from one of the wrong JSON type ("x: not an integer") or one whose text does not parse
    ("timestamp: not an ISO-8601 timestamp") instead of all three turning silently into null.
    Items of array fields (receipt lines) get the same checks, named `items[].quantity`.
    """
    framed = raw.select(
        F.col("topic").alias("_source"), F.col("partition").alias("_partition"),
        F.col("offset").alias("_offset"), F.col("timestamp").alias("_kafka_ts"),
        payload_text(F.col("value")).alias("_payload"),
        envelope_reason(F.col("value")).alias("_envelope"),
    )
    schema = T.StructType(list(record.spark_schema().fields)
                          + [T.StructField(_CORRUPT, T.StringType())])
    parsed = (framed
              .withColumn("_event", F.from_json(
                  "_payload", schema,
                  {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT}))
              .withColumn("_json", F.expr("try_parse_json(_payload)")))
    reason = F.coalesce(
        F.col("_envelope"),
        F.when(F.col("_json").isNull(), F.lit("malformed JSON")),
        F.when(~F.expr("schema_of_variant(_json)").startswith("OBJECT"),
               F.lit("payload is not a JSON object")),
        _joined([*(_field_reason(f) for f in record.fields), _unexpected_fields_reason(record),
                 *(_items_reason(f) for f in record.fields if f.type.kind == "array"),
                 *_RECORD_CHECKS.get(record.name, list)()]),
        F.when(F.col(f"_event.{_CORRUPT}").isNotNull(),
               F.lit(f"does not match the {record.name} contract")),
    )
    checked = parsed.select(
        *(F.col(f"_event.{f.name}").alias(f.name) for f in record.fields),
        "_source", "_partition", "_offset", "_kafka_ts", "_payload", reason.alias(REASON))
    if known_shelves is not None and "store_id" in record.field_names:
        checked = unknown_shelf_reason(checked, known_shelves)
    return checked


def payload_text(value: Column) -> Column:
    """The value as UTF-8 text; bytes that are not UTF-8 are kept as "base64:..." (DEAD_LETTER)."""
    text = value.cast("string")
    return F.when(_is_utf8(text), text).otherwise(F.concat(F.lit("base64:"), F.base64(value)))


def _is_utf8(text: Column) -> Column:
    return F.call_function("is_valid_utf8", text)


def envelope_reason(value: Column) -> Column:
    """What is wrong with the message before any JSON is looked at, or null."""
    return (F.when(value.isNull(), F.lit("empty payload"))
            .when(~_is_utf8(value.cast("string")), F.lit("payload is not UTF-8 text")))


def _field_reason(field: Field) -> Column:
    return _value_reason(field, F.expr(f"variant_get(_json, '$.{field.name}')"),
                         F.col(f"_event.{field.name}"), field.name)


def _value_reason(field: Field, element: Column, typed: Column, name: str) -> Column:
    """What is wrong with one value: `element` as the JSON holds it (a VARIANT), `typed` as
    the contract's type reads it (null when it does not parse), `name` as reasons call it."""
    present = element.isNotNull() & ~F.is_variant_null(element)
    kind_pattern, label = _JSON_KIND[field.type.kind]
    wrong = ~F.schema_of_variant(element).rlike(kind_pattern) | typed.isNull()
    if field.type.kind == "uuid":
        wrong = wrong | ~typed.rlike(UUID_PATTERN)
    absent_reason = None if field.nullable else F.lit(f"missing field {name}")
    checks = F.when(~present, absent_reason).when(wrong, F.lit(f"{name}: not {label}"))
    if field.type.kind == "enum":
        allowed = ", ".join(field.type.enum_values)
        checks = checks.when(~typed.isin(*field.type.enum_values), F.concat(
            F.lit(f"{name}: '"), typed, F.lit(f"' is not one of {allowed}")))
    low, high = FIELD_RANGES.get(name, FIELD_RANGES.get(field.name, (None, None)))
    if low is not None and high is None:
        checks = checks.when(typed < 0, F.lit(f"negative {name}"))
        if low > 0:  # a count that must be positive: 0 has its own reason
            checks = checks.when(typed < low, F.lit(f"{name}: less than {low:g}"))
    elif low is not None:
        checks = checks.when((typed < low) | (typed > high),
                             F.lit(f"{name}: not within {low:g}..{high:g}"))
    return checks


def _items_reason(field: Field) -> Column:
    """The reasons of an array field's items (receipt lines), checked field by field as
    top-level fields are and named `<array>[].<field>`; each distinct reason once."""
    item = field.type.item
    types = {f.name: f.dataType.simpleString() for f in item.spark_schema().fields}

    def line_reasons(line: Column) -> Column:
        extra = F.array_except(F.json_object_keys(F.to_json(line)),
                               F.array(*(F.lit(n) for n in item.field_names)))
        values = [_value_reason(f, F.try_variant_get(line, f"$.{f.name}", "variant"),
                                F.try_variant_get(line, f"$.{f.name}", types[f.name]),
                                f"{field.name}[].{f.name}") for f in item.fields]
        return F.when(~F.schema_of_variant(line).startswith("OBJECT"),
                      F.array(F.lit(f"{field.name}[]: not a JSON object"))).otherwise(F.array(
                          *values, F.when(F.size(extra) > 0, F.concat(
                              F.lit(f"unexpected field {field.name}[]."),
                              F.array_join(extra, f", {field.name}[].")))))

    lines = F.try_variant_get("_json", f"$.{field.name}", "array<variant>")
    found = F.array_distinct(F.filter(F.flatten(F.transform(lines, line_reasons)),
                                      lambda r: r.isNotNull()))
    return F.when(F.size(found) > 0, F.array_join(found, "; "))


def _tick_reasons() -> list[Column]:
    """A clock tick is one whole simulated minute, named and dated by that minute (the clock
    makes them so: `clock.tick_event`); anything else was not sent by the clock."""
    sim_time = F.col("_event.sim_time")
    return [
        F.when(F.date_trunc("minute", sim_time) != sim_time,
               F.lit("sim_time: not a whole minute")),
        F.when(F.col("_event.tick_id") != F.date_format(sim_time, "yyyy-MM-dd'T'HH:mm:ss'Z'"),
               F.lit("tick_id: not the minute of sim_time")),
        F.when(F.col("_event.sim_date") != F.to_date(sim_time),
               F.lit("sim_date: not the date of sim_time")),
    ]


def _shelf_event_reasons() -> list[Column]:
    """A pickup, putback or removal moves units: a customer's at least one (a restocker's
    putback may report 0, placed on a full shelf)."""
    quantity, kind = F.col("_event.quantity"), F.col("_event.event_type")
    moves = kind.isin("pickup", "putback", "expired_removal")
    return [
        F.when(moves & F.expr("coalesce(is_variant_null(variant_get(_json, '$.quantity')), "
                              "true)"),
               F.concat(F.lit("missing field quantity: a "), kind, F.lit(" moves units"))),
        F.when(moves & (F.col("_event.actor") == "customer") & (quantity == 0),
               F.concat(F.lit("quantity: a customer's "), kind, F.lit(" of 0 units"))),
    ]


def _receipt_reasons() -> list[Column]:
    """A receipt has lines, and its item count is their units (the till adds them up)."""
    items = F.col("_event.items")
    return [
        F.when(F.size(items) == 0, F.lit("items: a receipt without lines")),
        F.when(F.forall(items, lambda line: line["quantity"] >= 1)
               & (F.col("_event.total_items") != F.aggregate(
            items, F.lit(0).cast("long"), lambda acc, line: acc + line["quantity"])),
            F.lit("total_items: not the sum of the lines' quantities")),
    ]


# Checks across the fields of one record, by record name.
_RECORD_CHECKS = {"clock_tick": _tick_reasons, "shelf_event": _shelf_event_reasons,
                  "pos_transaction": _receipt_reasons}


def _unexpected_fields_reason(record: Record) -> Column:
    extra = F.array_except(F.expr("json_object_keys(_payload)"),
                           F.array(*(F.lit(n) for n in record.field_names)))
    return F.when(F.size(extra) > 0,
                  F.concat(F.lit("unexpected field "), F.array_join(extra, ", ")))


def _joined(reasons: list[Column]) -> Column:
    """All non-null reasons joined with "; ", or null when there are none."""
    text = F.concat_ws("; ", *reasons)
    return F.when(F.length(text) > 0, text)


def append_reason(df: DataFrame, condition: Column, message: Column | str) -> DataFrame:
    """Add `message` to `_reason` where `condition` holds (a null condition adds nothing)."""
    message = F.lit(message) if isinstance(message, str) else message
    current = F.col(REASON)
    added = F.when(current.isNull(), message).otherwise(F.concat_ws("; ", current, message))
    return df.withColumn(REASON, F.when(F.coalesce(condition, F.lit(False)), added)
                         .otherwise(current))


def unknown_shelf_reason(df: DataFrame, known_shelves: DataFrame,
                         topics: Sequence[str] | None = None) -> DataFrame:
    """Flag stores and shelves not in `known_shelves` (store_id, shelf_id, each once), in rows
    of `topics` (default: all), and in their receipt lines (`items[].shelf_id`); every row is
    kept."""
    known = F.broadcast(known_shelves.select("store_id", "shelf_id")
                        .withColumn("_known_shelf", F.lit(True)))
    columns = df.columns
    checked = F.col("_source").isin(list(topics)) if topics is not None else F.lit(True)
    stores = F.broadcast(known_shelves.select("store_id").distinct()
                         .withColumn("_known_store", F.lit(True)))
    flagged = append_reason(
        df.join(stores, on="store_id", how="left"),
        F.col("store_id").isNotNull() & F.col("_known_store").isNull() & checked,
        F.concat(F.lit("unknown store "), F.col("store_id"))).select(*columns)
    if "shelf_id" in columns:
        unknown = F.col("shelf_id").isNotNull() & F.col("_known_shelf").isNull() & checked
        flagged = append_reason(flagged.join(known, on=["store_id", "shelf_id"], how="left"),
                                unknown, F.concat(F.lit("unknown shelf "), F.col("shelf_id")))
    if "items" in columns:
        position = ["_source", "_partition", "_offset"]
        lines = (df.where(F.col("items").isNotNull() & checked)
                 .select(*position, "store_id", F.explode("items.shelf_id").alias("shelf_id"))
                 .where(F.col("shelf_id").isNotNull()))
        strangers = (lines.join(known, on=["store_id", "shelf_id"], how="left_anti")
                     .groupBy(*position)
                     .agg(F.array_join(F.array_sort(F.collect_set("shelf_id")), ", ")
                          .alias("_unknown_lines")))
        flagged = append_reason(
            flagged.join(strangers, on=position, how="left"), F.col("_unknown_lines").isNotNull(),
            F.concat(F.lit("unknown shelf in items[]: "), F.col("_unknown_lines")))
    return flagged.select(*columns)


def shelf_columns(df: DataFrame) -> list[Column]:
    """The columns that name a record's store and shelves, for `named_shelves` to read on the
    driver (with `_source`): what `unknown_shelf_reason` would look up."""
    columns = [F.col("store_id")]
    if "shelf_id" in df.columns:
        columns.append(F.col("shelf_id"))
    if "items" in df.columns:
        columns.append(F.col("items.shelf_id").alias("_line_shelves"))
    return columns


def named_shelves(rows: pa.Table, topics: Sequence[str]) -> set[tuple]:
    """(store_id, shelf_id) each once, as the rows of `topics` and their receipt lines name
    them (shelf_id None for a record that names only its store); `rows` has `shelf_columns`."""
    rows = rows.filter(pc.is_in(rows["_source"], pa.array(list(topics), pa.string())))
    stores = rows["store_id"]
    shelves = rows["shelf_id"] if "shelf_id" in rows.column_names else pa.nulls(len(rows),
                                                                                  pa.string())
    named = set(zip(stores.to_pylist(), shelves.to_pylist()))
    if "_line_shelves" in rows.column_names:
        lines = rows["_line_shelves"].combine_chunks()
        line_stores = pc.take(stores, pc.list_parent_indices(lines))
        named |= set(zip(line_stores.to_pylist(), pc.list_flatten(lines).to_pylist()))
    return named


def unknown_shelves(named: set[tuple], known: set[tuple]) -> set[tuple]:
    """The (store_id, shelf_id) pairs of `named` that `unknown_shelf_reason` flags against
    `known`: a store the platform does not have, or a shelf its store does not have."""
    stores = {store for store, _ in known}
    return {(store, shelf) for store, shelf in named
            if (store is not None and store not in stores)
            or (shelf is not None and (store, shelf) not in known)}


def valid_rows(df: DataFrame, record: Record) -> DataFrame:
    """The rows that honour the contract, with the contract's columns only."""
    return df.where(F.col(REASON).isNull()).select(*record.field_names)
