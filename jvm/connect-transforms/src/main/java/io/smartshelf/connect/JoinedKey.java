package io.smartshelf.connect;

import java.util.Map;
import java.util.stream.Collectors;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Replaces a Struct key by its field values joined with '|': the platform's message key
 * (contracts.catalogue.Topic.message_key), instead of a rendering of the Struct.
 *
 * <p>Debezium keys a change by the table's primary key columns in key order, and the contract test
 * holds every primary key to its record's key, so the joined key equals the one Spark and the
 * Python producers write; the default partitioner then puts it on the same partition too.
 */
public class JoinedKey<R extends ConnectRecord<R>> implements Transformation<R> {

    @Override
    public R apply(R record) {
        if (!(record.key() instanceof Struct key)) {
            return record;
        }
        String joined = key.schema().fields().stream()
                .map(field -> String.valueOf(key.get(field)))
                .collect(Collectors.joining("|"));
        return record.newRecord(record.topic(), record.kafkaPartition(), Schema.STRING_SCHEMA,
                joined, record.valueSchema(), record.value(), record.timestamp(), record.headers());
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
