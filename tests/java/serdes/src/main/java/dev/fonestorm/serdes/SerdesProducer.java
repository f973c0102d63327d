package dev.fonestorm.serdes;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.apicurio.registry.serde.jsonschema.JsonSchemaKafkaSerializer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Sends one JSON value with Apicurio's JsonSchemaKafkaSerializer in the Confluent wire format
 * (magic byte 0, 4-byte big-endian schema id, JSON), the way a Java producer of bridge commands
 * configures it (see {@link #producerConfig}), and prints the record's coordinates as JSON.
 */
public final class SerdesProducer {
    static final String USAGE = String.join("\n",
            "usage: SerdesProducer --bootstrap HOST:PORT --topic T --registry URL --subject S",
            "                      [--group G] [--key K] [--header NAME=VALUE ...] [--value FILE|-]",
            "Sends the JSON in FILE (default -, stdin) under the latest schema of subject S.");

    private static final ObjectMapper JSON = new ObjectMapper();

    private SerdesProducer() {}

    /** A Confluent-compatible JSON Schema producer against an already-registered subject. */
    static Map<String, Object> producerConfig(String bootstrap, String registryUrl, String subject, String group) {
        Map<String, Object> config = new HashMap<>();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, JsonSchemaKafkaSerializer.class.getName());
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put("apicurio.registry.url", Args.registryApi(registryUrl));
        // The id goes in the payload, not in headers...
        config.put("apicurio.registry.headers.enabled", false);
        // ...as 4 bytes after the magic byte. ("apicurio.registry.as-confluent"=true does the same
        // but logs a warning, as the id-handler option always has a default to conflict with.)
        config.put("apicurio.registry.id-handler", "io.apicurio.registry.serde.Legacy4ByteIdHandler");
        // ...and it is the content id, the id the ccompat API hands out (the default is globalId).
        config.put("apicurio.registry.use-id", "contentId");
        // The subject is the artifact; its latest version is looked up, never registered.
        config.put("apicurio.registry.artifact.artifact-id", subject);
        if (group != null) {
            config.put("apicurio.registry.artifact.group-id", group);
        }
        config.put("apicurio.registry.auto-register", false);
        config.put("apicurio.registry.serde.validation-enabled", true);
        return config;
    }

    public static void main(String[] argv) throws IOException, InterruptedException {
        Args args;
        try {
            args = new Args(argv, USAGE);
            args.required("bootstrap");
        } catch (Args.UsageException e) {
            System.err.println(e.getMessage() + "\n" + USAGE);
            System.exit(2);
            return;
        }
        String source = args.optional("value", "-");
        JsonNode value;
        try (InputStream in = source.equals("-") ? System.in : Files.newInputStream(Path.of(source))) {
            value = JSON.readTree(in);
        }
        String topic = args.required("topic");
        Map<String, Object> config = producerConfig(args.required("bootstrap"), args.required("registry"),
                args.required("subject"), args.optional("group", null));
        ProducerRecord<String, JsonNode> record =
                new ProducerRecord<>(topic, args.optional("key", null), value);
        for (String header : args.all("header")) {
            int eq = header.indexOf('=');
            if (eq <= 0) {
                System.err.println("--header wants NAME=VALUE, got " + header);
                System.exit(2);
            }
            record.headers().add(header.substring(0, eq), header.substring(eq + 1).getBytes(StandardCharsets.UTF_8));
        }
        try (KafkaProducer<String, JsonNode> producer = new KafkaProducer<>(config)) {
            RecordMetadata sent = producer.send(record).get();
            ObjectNode line = JSON.createObjectNode();
            line.put("topic", sent.topic());
            line.put("partition", sent.partition());
            line.put("offset", sent.offset());
            System.out.println(line.toString());
        } catch (ExecutionException e) {
            System.err.println("send failed: " + e.getCause());
            System.exit(1);
        } catch (RuntimeException e) {
            // The serializer fails in send(): unknown subject, registry down, invalid value.
            System.err.println("serialize failed: " + e);
            for (Throwable cause = e.getCause(); cause != null; cause = cause.getCause()) {
                System.err.println("  caused by: " + cause);
            }
            System.exit(1);
        }
    }
}
