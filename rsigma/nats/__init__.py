"""NATS JetStream: URLs and resource names (source, sink and dead-letter queue land with the NATS issue)."""
