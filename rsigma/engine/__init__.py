"""The pure, synchronous Sigma evaluation engine."""

from rsigma.engine.engine import Detection, Engine

__all__ = ["Detection", "Engine"]
