"""`rsigma engine daemon`: the streaming runtime around the pure engine (sources, sinks, state, API)."""
