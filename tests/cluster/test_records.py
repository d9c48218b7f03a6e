"""What the cluster's KV bucket holds (rsigma.cluster.records): names, config, member records."""

from __future__ import annotations

import pytest

from rsigma.cluster.records import (
    ClusterConfig,
    MemberRecord,
    MembershipError,
    bucket_name,
    check_cluster_name,
    check_member_id,
    decode_config,
    decode_member,
    member_key,
    ttl_of,
)


def test_names():
    assert bucket_name("prod-eu") == "rsigma-cluster-prod-eu"
    assert member_key("web-1.example") == "members.web-1.example"


@pytest.mark.parametrize("name", ["a.b", "a b", "x>", "*", ""])
def test_a_cluster_name_that_cannot_be_a_bucket_or_subject_token_is_refused(name):
    with pytest.raises(MembershipError, match="--cluster"):
        check_cluster_name(name)


@pytest.mark.parametrize("member", [".a", "a.", "a..b", "a b", "a>", ""])
def test_a_member_id_that_cannot_be_a_key_is_refused(member):
    with pytest.raises(MembershipError, match="--cluster-member-id"):
        check_member_id(member)


def test_a_member_key_lives_three_heartbeats_in_whole_seconds_at_least_one():
    assert [ttl_of(h) for h in (1.0, 0.25, 1 / 3, 0.5, 2.0)] == [3, 1, 1, 2, 6]
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(MembershipError, match="--cluster-heartbeat"):
            ttl_of(bad)


def test_config_round_trip_and_bad_values():
    assert decode_config(ClusterConfig(64).encode(), "b") == ClusterConfig(64, 1)
    with pytest.raises(MembershipError, match="is not a cluster config"):
        decode_config(b"[]", "bucket x")
    with pytest.raises(MembershipError, match="format is 2, this rsigma reads format 1"):
        decode_config(b'{"partitions": 64, "format": 2}', "bucket x")
    with pytest.raises(MembershipError, match="partitions 0"):
        decode_config(b'{"partitions": 0, "format": 1}', "bucket x")


def test_member_records_round_trip_and_tell_instances_apart():
    record = MemberRecord("a", "host1", 42, 1700000000.5, 1.0, "127.0.0.1:9090")
    assert decode_member(record.encode()) == record
    assert record.same_instance(MemberRecord("other-id", "host1", 42, 1700000000.5, 2.0))
    assert not record.same_instance(MemberRecord("a", "host1", 43, 1700000000.5, 1.0))
    assert decode_member(b"not json") is None and decode_member(b'{"member": "a"}') is None
    bad_heartbeat = MemberRecord("a", "h", 1, 1.0, 0.0).encode()
    assert decode_member(bad_heartbeat) is None
