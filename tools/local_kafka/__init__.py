"""scripts/local-kafka: a real single-node Apache Kafka (KRaft) on 127.0.0.1 from Maven jars.
May import only the standard library and itself (system python3, no venv); never `bridge`."""
