package dev.fonestorm.serdes;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.apicurio.registry.resolver.SchemaLookupResult;
import io.apicurio.registry.resolver.strategy.ArtifactReference;
import io.apicurio.registry.serde.headers.DefaultHeadersHandler;
import io.apicurio.registry.serde.jsonschema.JsonSchemaKafkaDeserializer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordDeserializationException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads topics from the beginning with Apicurio's JsonSchemaKafkaDeserializer, configured the way
 * a Java consumer of the bridge configures it (see {@link #consumerConfig}), and prints one JSON
 * line per record on stdout: where it came from, the schema ids in its headers, the schema the
 * deserializer resolved, and whether the value validated (or why not).
 */
public final class SerdesConsumer {
    static final String USAGE = String.join("\n",
            "usage: SerdesConsumer --bootstrap HOST:PORT --topic T [--topic T2 ...]",
            "                      --registry URL --count N [--timeout SECONDS]",
            "Prints one JSON line per record; exits 0 after N records, 3 on timeout.");

    private static final ObjectMapper JSON = new ObjectMapper();

    private SerdesConsumer() {}

    /** Everything a Java consumer of the bridge's registry-mode records needs, and no more. */
    static Map<String, Object> consumerConfig(String bootstrap, String registryUrl) {
        Map<String, Object> config = new HashMap<>();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG,
                JsonSchemaKafkaDeserializer.class.getName());
        config.put("apicurio.registry.url", Args.registryApi(registryUrl));
        // Both are the 2.4.2 defaults, spelled out: the schema id comes from the record headers,
        // and the value is validated against the schema it names.
        config.put("apicurio.registry.headers.enabled", true);
        config.put("apicurio.registry.serde.validation-enabled", true);
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        return config;
    }

    public static void main(String[] argv) {
        try {
            System.exit(run(new Args(argv, USAGE)));
        } catch (Args.UsageException e) {
            System.err.println(e.getMessage() + "\n" + USAGE);
            System.exit(2);
        }
    }

    static int run(Args args) throws Args.UsageException {
        List<String> topics = args.all("topic");
        if (topics.isEmpty()) {
            throw new Args.UsageException("missing --topic");
        }
        int expected = Integer.parseInt(args.required("count"));
        long deadline = System.nanoTime()
                + (long) (Double.parseDouble(args.optional("timeout", "60")) * 1e9);
        Map<String, Object> config = consumerConfig(args.required("bootstrap"), args.required("registry"));

        // The deserializer is built from the same config the consumer would instantiate it from,
        // so its resolver (and cache) can say which schema each record resolved to.
        JsonSchemaKafkaDeserializer<JsonNode> values = new JsonSchemaKafkaDeserializer<>();
        values.configure(config, false);
        DefaultHeadersHandler headerIds = new DefaultHeadersHandler();
        headerIds.configure(config, false);

        int seen = 0;
        try (KafkaConsumer<String, JsonNode> consumer =
                     new KafkaConsumer<>(config, new StringDeserializer(), values)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (String topic : topics) {
                for (PartitionInfo info : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                    partitions.add(new TopicPartition(topic, info.partition()));
                }
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            while (seen < expected) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    System.err.printf("timed out after %d of %d records%n", seen, expected);
                    return 3;
                }
                try {
                    for (ConsumerRecord<String, JsonNode> record :
                            consumer.poll(Duration.ofMillis(Math.min(500, left / 1_000_000 + 1)))) {
                        ObjectNode line = where(record.topic(), record.partition(), record.offset());
                        line.put("key", record.key());
                        line.set("header_ids", ids(record.headers()));
                        line.set("resolved", resolved(values, headerIds.readHeaders(record.headers())));
                        line.put("valid", true);
                        line.set("value", record.value());
                        emit(line);
                        seen++;
                    }
                } catch (RecordDeserializationException e) {
                    // Records before the bad one were returned by the previous poll; skip it.
                    TopicPartition tp = e.topicPartition();
                    ObjectNode line = where(tp.topic(), tp.partition(), e.offset());
                    ByteBuffer key = e.keyBuffer();
                    line.put("key", key == null ? null : StandardCharsets.UTF_8.decode(key.duplicate()).toString());
                    line.set("header_ids", ids(e.headers()));
                    // Resolution precedes validation, so a record that failed validation names
                    // the schema it was checked against.
                    line.set("resolved", resolved(values, headerIds.readHeaders(e.headers())));
                    line.put("valid", false);
                    line.put("error", describe(e.getCause() == null ? e : e.getCause()));
                    emit(line);
                    seen++;
                    consumer.seek(tp, e.offset() + 1);
                }
            }
        }
        return 0;
    }

    private static ObjectNode where(String topic, int partition, long offset) {
        ObjectNode line = JSON.createObjectNode();
        line.put("topic", topic);
        line.put("partition", partition);
        line.put("offset", offset);
        return line;
    }

    /** The apicurio.* id headers as numbers (8-byte big-endian longs), other headers as text. */
    private static ObjectNode ids(Headers headers) {
        ObjectNode out = JSON.createObjectNode();
        if (headers == null) {
            return out;
        }
        for (Header header : headers) {
            byte[] raw = header.value();
            if (raw == null) {
                out.putNull(header.key());
            } else if (header.key().startsWith("apicurio.") && header.key().endsWith("Id") && raw.length == 8) {
                out.put(header.key(), ByteBuffer.wrap(raw).getLong());
            } else if (header.key().startsWith("apicurio.")) {
                out.put(header.key(), new String(raw, StandardCharsets.UTF_8));
            }
        }
        return out;
    }

    /**
     * The lookup the deserializer made for the header ids (served from its cache); null when
     * there were none or they do not resolve.
     */
    private static ObjectNode resolved(JsonSchemaKafkaDeserializer<JsonNode> values, ArtifactReference ref) {
        if (!ref.hasValue()) {
            return null;
        }
        SchemaLookupResult<?> lookup;
        try {
            lookup = values.getSchemaResolver().resolveSchemaByArtifactReference(ref);
        } catch (RuntimeException unresolved) {
            return null;
        }
        ObjectNode out = JSON.createObjectNode();
        // A lookup by one id leaves the other unset (0); registry ids start at 1.
        putId(out, "contentId", lookup.getContentId());
        putId(out, "globalId", lookup.getGlobalId());
        try {
            JsonNode schemaId = JSON.readTree(lookup.getParsedSchema().getRawSchema()).get("$id");
            if (schemaId != null) {
                out.put("$id", schemaId.asText());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    private static void putId(ObjectNode out, String name, long id) {
        if (id > 0) {
            out.put(name, id);
        } else {
            out.putNull(name);
        }
    }

    /** The innermost cause: the validator's or the registry client's own words. */
    private static String describe(Throwable error) {
        Throwable root = error;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root.getClass().getSimpleName() + ": " + String.valueOf(root.getMessage()).strip();
    }

    private static void emit(ObjectNode line) {
        System.out.println(line.toString());
        System.out.flush();
    }
}
