"""Correlation across nodes: daemons of one cluster share partitions of the correlation windows.

`ownership` is the interface the daemon uses (which partitions this node applies), `rendezvous` picks
an owner for each partition from the live members, and `membership` keeps the live members in a
JetStream KV bucket. The design is in docs/cluster.md.
"""
