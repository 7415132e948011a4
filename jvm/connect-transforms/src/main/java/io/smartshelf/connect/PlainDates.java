package io.smartshelf.connect;

import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Writes Debezium's ISO dates as the contracts' plain dates: with time.precision.mode=isostring
 * a date column becomes "2026-01-05Z", which a contract date ("2026-01-05") is not. Timestamps
 * keep their zone.
 */
public class PlainDates<R extends ConnectRecord<R>> implements Transformation<R> {

    static final String ISO_DATE = "io.debezium.time.IsoDate";

    @Override
    public R apply(R record) {
        if (!(record.value() instanceof Struct value)) {
            return record;
        }
        Struct plain = new Struct(value.schema());
        for (Field field : value.schema().fields()) {
            Object v = value.get(field);
            if (ISO_DATE.equals(field.schema().name()) && v instanceof String s && s.endsWith("Z")) {
                v = s.substring(0, s.length() - 1);
            }
            plain.put(field, v);
        }
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(),
                record.key(), value.schema(), plain, record.timestamp(), record.headers());
    }

    @Override
    public ConfigDef config() {
        return new ConfigDef();
    }

    @Override
    public void configure(Map<String, ?> configs) {
    }

    @Override
    public void close() {
    }
}
