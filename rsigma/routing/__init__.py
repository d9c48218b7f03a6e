"""Logsource routing: place each event in a logsource, so only rules written for it are evaluated."""

from rsigma.routing.router import (
    LogsourceRouter,
    Placement,
    compatible,
    load_router,
    load_routers,
    merge_routers,
)

__all__ = ["LogsourceRouter", "Placement", "compatible", "load_router", "load_routers", "merge_routers"]
