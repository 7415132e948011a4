package io.smartshelf.connect;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Decimal;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Turns a schemaless JSON value (a Map, as JsonConverter reads it with schemas disabled) into a
 * Struct with the Connect schema of a platform contract, so the JDBC sink can write it while the
 * topic keeps the plain JSON the streaming jobs read.
 *
 * <p>`fields` lists the contract's fields as rendered by smart_shelf_platform.stack.connect:
 * {@code name[?]:kind[:parameter]}, `?` for nullable; kinds string, uuid, date, timestamp,
 * int, long, double, bool, {@code decimal:<scale>}, {@code enum:<a|b|c>}. A value that breaks
 * the contract (a field missing, of the wrong type, a uuid, date, timestamp or enum value that
 * does not parse) throws a DataException naming every problem: with errors.tolerance=all the
 * worker sends the record to the dead-letter topic with that reason in its headers, instead of
 * failing the write in Postgres. Fields the contract does not name (a receipt's items, for the
 * header table) are left out. Uuids, dates and timestamps stay ISO-8601 text, which Postgres
 * casts exactly (the sink's URL sets stringtype=unspecified); Connect's own Timestamp would cut
 * them to milliseconds.
 */
public class ContractSchema<R extends ConnectRecord<R>> implements Transformation<R> {

    public static final String FIELDS = "fields";
    public static final String SCHEMA_NAME = "schema.name";

    private static final Pattern UUID = Pattern.compile(
            "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");

    private record FieldSpec(String name, boolean nullable, String kind, String parameter) {
    }

    private List<FieldSpec> specs;
    private Schema schema;

    @Override
    public ConfigDef config() {
        return new ConfigDef()
                .define(FIELDS, ConfigDef.Type.LIST, ConfigDef.Importance.HIGH,
                        "the contract's fields: name[?]:kind[:parameter]")
                .define(SCHEMA_NAME, ConfigDef.Type.STRING, ConfigDef.Importance.LOW,
                        "name of the Connect schema (the contract's record name)");
    }

    @Override
    public void configure(Map<String, ?> configs) {
        var parsed = new AbstractConfig(config(), configs);
        specs = new ArrayList<>();
        SchemaBuilder builder = SchemaBuilder.struct().name(parsed.getString(SCHEMA_NAME));
        for (String text : parsed.getList(FIELDS)) {
            String[] parts = text.trim().split(":", 3);
            if (parts.length < 2) {
                throw new ConfigException(FIELDS, text,
                        "expected name[?]:kind[:parameter]");
            }
            boolean nullable = parts[0].endsWith("?");
            String name = nullable ? parts[0].substring(0, parts[0].length() - 1) : parts[0];
            FieldSpec spec = new FieldSpec(name, nullable, parts[1], parts.length > 2 ? parts[2] : "");
            SchemaBuilder type = connectType(spec);
            builder.field(name, nullable ? type.optional().build() : type.build());
            specs.add(spec);
        }
        schema = builder.build();
    }

    private static SchemaBuilder connectType(FieldSpec spec) {
        return switch (spec.kind()) {
            case "string", "uuid", "date", "timestamp", "enum" -> SchemaBuilder.string();
            case "int" -> SchemaBuilder.int32();
            case "long" -> SchemaBuilder.int64();
            case "double" -> SchemaBuilder.float64();
            case "bool" -> SchemaBuilder.bool();
            case "decimal" -> Decimal.builder(Integer.parseInt(spec.parameter()));
            default -> throw new ConfigException(FIELDS, spec.kind(),
                    "unknown kind of field " + spec.name());
        };
    }

    @Override
    public R apply(R record) {
        if (record.value() == null) {
            return record;  // a tombstone: the sink decides (deletes are off)
        }
        if (!(record.value() instanceof Map<?, ?> value)) {
            throw new DataException(schema.name() + ": the value is not a JSON object");
        }
        Struct struct = new Struct(schema);
        List<String> problems = new ArrayList<>();
        for (FieldSpec spec : specs) {
            Object raw = value.get(spec.name());
            if (raw == null) {
                if (!spec.nullable()) {
                    problems.add("missing field " + spec.name());
                }
                continue;
            }
            try {
                struct.put(spec.name(), convert(spec, raw));
            } catch (IllegalArgumentException | DateTimeParseException | ArithmeticException e) {
                problems.add(spec.name() + ": " + e.getMessage());
            }
        }
        if (!problems.isEmpty()) {
            throw new DataException(schema.name() + ": " + String.join("; ", problems));
        }
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(),
                record.key(), schema, struct, record.timestamp(), record.headers());
    }

    private static Object convert(FieldSpec spec, Object raw) {
        return switch (spec.kind()) {
            case "string" -> text(raw, "a string");
            case "uuid" -> {
                String s = text(raw, "a uuid");
                if (!UUID.matcher(s).matches()) {
                    throw new IllegalArgumentException("'" + s + "' is not a uuid");
                }
                yield s;
            }
            case "enum" -> {
                String s = text(raw, "a string");
                if (!Set.of(spec.parameter().split("\\|")).contains(s)) {
                    throw new IllegalArgumentException("'" + s + "' is not one of "
                            + spec.parameter().replace("|", ", "));
                }
                yield s;
            }
            case "date" -> LocalDate.parse(text(raw, "an ISO-8601 date")).toString();
            case "timestamp" -> {
                String s = text(raw, "an ISO-8601 timestamp");
                OffsetDateTime.parse(s);  // with its offset: Postgres must not guess a zone
                yield s;
            }
            case "int" -> Math.toIntExact(integer(raw));
            case "long" -> integer(raw);
            case "double" -> number(raw).doubleValue();
            case "bool" -> {
                if (!(raw instanceof Boolean b)) {
                    throw new IllegalArgumentException("not a boolean");
                }
                yield b;
            }
            case "decimal" -> new BigDecimal(number(raw).toString())
                    .setScale(Integer.parseInt(spec.parameter()), RoundingMode.HALF_EVEN);
            default -> throw new IllegalStateException(spec.kind());
        };
    }

    private static String text(Object raw, String label) {
        if (!(raw instanceof String s)) {
            throw new IllegalArgumentException("not " + label);
        }
        return s;
    }

    private static Number number(Object raw) {
        if (!(raw instanceof Number n)) {
            throw new IllegalArgumentException("not a number");
        }
        return n;
    }

    private static long integer(Object raw) {
        if (raw instanceof Long || raw instanceof Integer || raw instanceof Short) {
            return ((Number) raw).longValue();
        }
        throw new IllegalArgumentException("not an integer");
    }

    @Override
    public void close() {
    }
}
