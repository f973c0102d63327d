package dev.fonestorm.serdes;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** `--name value` options; a repeated option keeps every value. */
final class Args {
    private final Map<String, List<String>> values = new HashMap<>();

    Args(String[] argv, String usage) {
        for (int i = 0; i < argv.length; i++) {
            String arg = argv[i];
            if (arg.equals("--help") || arg.equals("-h")) {
                System.out.println(usage);
                System.exit(0);
            }
            if (!arg.startsWith("--") || i + 1 >= argv.length) {
                throw new UsageException("expected --option value, got " + arg);
            }
            values.computeIfAbsent(arg.substring(2), k -> new ArrayList<>()).add(argv[++i]);
        }
    }

    String required(String name) {
        List<String> all = values.get(name);
        if (all == null) {
            throw new UsageException("missing --" + name);
        }
        return all.get(all.size() - 1);
    }

    String optional(String name, String fallback) {
        List<String> all = values.get(name);
        return all == null ? fallback : all.get(all.size() - 1);
    }

    List<String> all(String name) {
        return values.getOrDefault(name, List.of());
    }

    /** The registry's v2 API, which Apicurio's serdes talk to, from its base URL. */
    static String registryApi(String url) {
        String base = url.replaceAll("/+$", "");
        return base.endsWith("/apis/registry/v2") ? base : base + "/apis/registry/v2";
    }

    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }
}
