"""rsigma: a Sigma detection engine and streaming daemon on NATS JetStream."""

__version__ = "0.1.0"
