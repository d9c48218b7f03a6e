"""pySigma-compatible processing pipelines: field mappings and rule rewrites applied at load time."""

from rsigma.pipelines.pipeline import (
    Pipeline,
    apply_pipelines,
    builtin_pipelines,
    load_pipeline,
    parse_pipeline_text,
    read_pipeline,
)

__all__ = [
    "Pipeline",
    "apply_pipelines",
    "builtin_pipelines",
    "load_pipeline",
    "parse_pipeline_text",
    "read_pipeline",
]
