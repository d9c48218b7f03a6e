"""The `cluster` section of `/api/v1/status`: who is in the cluster and what this member owns."""

from __future__ import annotations

from typing import Any

from rsigma.cluster.membership import Membership

__all__ = ["cluster_status"]


def cluster_status(membership: Membership) -> dict[str, Any]:
    """A JSON-ready snapshot; members as they describe themselves (None fields for an unreadable one)."""
    records = membership.records()
    members = []
    for member_id in membership.members:
        record = records.get(member_id)
        members.append(
            {
                "id": member_id,
                "host": record.host if record else None,
                "pid": record.pid if record else None,
                "started": record.started if record else None,
                "api": record.api if record else None,
            }
        )
    return {
        "name": membership.cluster,
        "member": membership.member_id,
        "partitions": membership.partitions,
        "members": members,
        "owned_partitions": sorted(membership.owned()),
        "rebalances": membership.rebalances,
        "heartbeat_seconds": membership.heartbeat_s,
        "member_ttl_seconds": membership.ttl_s,
        "kv": "unreachable" if membership.outage_since is not None else "ok",
        "kv_unreachable_since": membership.outage_since,
    }
