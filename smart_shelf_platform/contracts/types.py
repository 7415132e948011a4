"""The contract language: logical field types and records, and their renderings.

A record is defined once (in `events.py`, `state.py`, `reference.py`, ...) and rendered from here
into every system that stores or validates it: Spark `StructType`, Arrow schema (delta-rs),
JSON Schema (validation at the edges) and the Postgres column types the `sql/` DDL must use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class LogicalType:
    """A logical type; `kind` is one of the names handled by the renderers below."""

    kind: str
    precision: int = 0
    scale: int = 0
    enum_name: str = ""
    enum_values: tuple[str, ...] = ()
    item: Record | None = None

    @property
    def postgres(self) -> str:
        if self.kind == "decimal":
            return f"numeric({self.precision},{self.scale})"
        if self.kind == "enum":
            return self.enum_name
        if self.kind == "array":
            return "jsonb"
        return _POSTGRES[self.kind]


_POSTGRES = {
    "string": "text",
    "uuid": "uuid",
    "int": "integer",
    "long": "bigint",
    "double": "double precision",
    "bool": "boolean",
    "timestamp": "timestamp with time zone",
    "date": "date",
    "json": "jsonb",
}

STRING = LogicalType("string")
UUID = LogicalType("uuid")
INT = LogicalType("int")
LONG = LogicalType("long")
DOUBLE = LogicalType("double")
BOOL = LogicalType("bool")
TIMESTAMP = LogicalType("timestamp")
DATE = LogicalType("date")
JSON = LogicalType("json")


def decimal(precision: int, scale: int) -> LogicalType:
    return LogicalType("decimal", precision=precision, scale=scale)


@dataclass(frozen=True)
class Enum:
    """A closed set of string values; a Postgres enum type of the same name backs it."""

    name: str  # schema-qualified Postgres type name, e.g. "ops.alert_status"
    values: tuple[str, ...]

    @property
    def type(self) -> LogicalType:
        return LogicalType("enum", enum_name=self.name, enum_values=self.values)


def array_of(item: Record) -> LogicalType:
    return LogicalType("array", item=item)


@dataclass(frozen=True)
class Field:
    name: str
    type: LogicalType
    nullable: bool = False
    description: str = ""


@dataclass(frozen=True)
class Record:
    """A named, ordered set of fields with a key (the compaction / primary / merge key)."""

    name: str
    fields: tuple[Field, ...]
    key: tuple[str, ...] = ()
    description: str = ""
    _by_name: dict[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.name}: duplicate field names")
        missing = set(self.key) - set(names)
        if missing:
            raise ValueError(f"{self.name}: key fields {sorted(missing)} are not fields")
        self._by_name.update({f.name: f for f in self.fields})

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def derive(self, name: str, *, drop: tuple[str, ...] = (), prepend: tuple[Field, ...] = (),
               key: tuple[str, ...] | None = None, description: str = "") -> Record:
        """A new record from this one: some fields dropped, others put in front."""
        kept = tuple(f for f in self.fields if f.name not in drop)
        return Record(name, prepend + kept, key=self.key if key is None else key,
                      description=description or self.description)

    # ---- renderings -------------------------------------------------------------------------

    def spark_schema(self):
        """The Spark StructType (imported lazily so producers need no pyspark import)."""
        from pyspark.sql import types as T

        def render(t: LogicalType):
            if t.kind == "array":
                return T.ArrayType(t.item.spark_schema(), containsNull=False)
            if t.kind == "decimal":
                return T.DecimalType(t.precision, t.scale)
            return {
                "string": T.StringType(), "uuid": T.StringType(), "enum": T.StringType(),
                "json": T.StringType(), "int": T.IntegerType(), "long": T.LongType(),
                "double": T.DoubleType(), "bool": T.BooleanType(),
                "timestamp": T.TimestampType(), "date": T.DateType(),
            }[t.kind]

        return T.StructType([T.StructField(f.name, render(f.type), f.nullable) for f in self.fields])

    def arrow_schema(self) -> pa.Schema:
        def render(t: LogicalType) -> pa.DataType:
            if t.kind == "array":
                return pa.list_(pa.struct(list(t.item.arrow_schema())))
            if t.kind == "decimal":
                return pa.decimal128(t.precision, t.scale)
            return {
                "string": pa.string(), "uuid": pa.string(), "enum": pa.string(),
                "json": pa.string(), "int": pa.int32(), "long": pa.int64(),
                "double": pa.float64(), "bool": pa.bool_(),
                "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
            }[t.kind]

        return pa.schema([pa.field(f.name, render(f.type), f.nullable) for f in self.fields])

    def json_schema(self) -> dict[str, Any]:
        def render(t: LogicalType) -> dict[str, Any]:
            if t.kind == "array":
                return {"type": "array", "items": t.item.json_schema()}
            if t.kind == "enum":
                return {"type": "string", "enum": list(t.enum_values)}
            return {
                "string": {"type": "string"},
                "json": {"type": "string"},
                "uuid": {"type": "string", "format": "uuid"},
                "int": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
                "long": {"type": "integer"},
                "double": {"type": "number"},
                "decimal": {"type": "number"},
                "bool": {"type": "boolean"},
                "timestamp": {"type": "string", "format": "date-time"},
                "date": {"type": "string", "format": "date"},
            }[t.kind]

        properties = {}
        for f in self.fields:
            rendered = render(f.type)
            if f.description:
                rendered["description"] = f.description
            if f.nullable:
                rendered = {"anyOf": [rendered, {"type": "null"}], **(
                    {"description": f.description} if f.description else {})}
            properties[f.name] = rendered
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "description": self.description,
            "type": "object",
            "properties": properties,
            "required": [f.name for f in self.fields if not f.nullable],
            "additionalProperties": False,
        }
