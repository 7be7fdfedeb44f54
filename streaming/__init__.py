"""Events to other systems: the wire envelope and the Kafka relay (event store -> topic)."""
