"""scripts/local-registry: Apicurio Registry 2.4.2 on 127.0.0.1, built once from Maven Central.
May import only the standard library, itself and tools.local_kafka (system python3, no venv)."""
