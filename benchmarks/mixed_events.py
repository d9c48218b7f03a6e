"""A mixed fleet stream: Windows (Sysmon), Linux (Sysmon for Linux, auditd) and AWS CloudTrail events.

Why: logsource routing only shows its worth when events of several products share one stream, as
they do behind a log shipper. Windows events come from `events.py`; this module adds the others,
deterministically for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import events as sysmon

HERE = Path(__file__).resolve().parent

LINUX_USERS = ("root", "ubuntu", "deploy", "postgres", "www-data", "jenkins", "alice", "bob")
LINUX_COMMANDS = (
    ("/usr/bin/bash", "bash -c /opt/app/bin/healthcheck.sh"),
    ("/usr/bin/python3", "python3 /opt/app/manage.py runworker --queue default"),
    ("/usr/bin/curl", "curl -s -o /dev/null -w %{http_code} http://127.0.0.1:8080/health"),
    ("/usr/bin/ls", "ls -la /var/log/nginx"),
    ("/usr/bin/grep", "grep -c ERROR /var/log/app/app.log"),
    ("/usr/sbin/sshd", "sshd: deploy [priv]"),
    ("/usr/bin/systemctl", "systemctl status nginx.service"),
    ("/usr/bin/git", "git -C /srv/repo fetch --prune origin"),
    ("/usr/bin/tar", "tar czf /backup/db-nightly.tgz /var/lib/postgresql/14/main"),
    ("/usr/bin/apt-get", "apt-get -qq update"),
    ("/usr/bin/docker", "docker ps --format {{.Names}}"),
    ("/usr/bin/crontab", "crontab -l"),
)
AWS_CALLS = (
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "PutObject"),
    ("s3.amazonaws.com", "ListBuckets"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("ec2.amazonaws.com", "DescribeSecurityGroups"),
    ("sts.amazonaws.com", "AssumeRole"),
    ("sts.amazonaws.com", "GetCallerIdentity"),
    ("iam.amazonaws.com", "ListRoles"),
    ("kms.amazonaws.com", "Decrypt"),
    ("logs.amazonaws.com", "PutLogEvents"),
    ("lambda.amazonaws.com", "Invoke"),
    ("dynamodb.amazonaws.com", "Query"),
)


def _linux_sysmon(r: random.Random, ts: str, host: str) -> dict[str, Any]:
    image, cmd = r.choice(LINUX_COMMANDS)
    return {
        "Channel": "Linux-Sysmon/Operational",
        "EventID": 1,
        "Computer": host,
        "UtcTime": ts.replace("T", " ").rstrip("Z"),
        "@timestamp": ts,
        "ProcessId": r.randint(300, 90000),
        "Image": image,
        "CommandLine": cmd,
        "CurrentDirectory": r.choice(("/", "/root", "/srv/app", "/home/deploy")),
        "User": r.choice(LINUX_USERS),
        "ParentImage": r.choice(("/usr/bin/bash", "/usr/sbin/cron", "/usr/lib/systemd/systemd")),
        "ParentCommandLine": "/bin/bash",
    }


def _auditd(r: random.Random, ts: str, host: str) -> dict[str, Any]:
    image, cmd = r.choice(LINUX_COMMANDS)
    args = cmd.split()
    event: dict[str, Any] = {
        "type": "EXECVE",
        "host": host,
        "@timestamp": ts,
        "msg": f"audit({r.randint(1_700_000_000, 1_800_000_000)}.{r.randint(100, 999)}:{r.randint(1, 9999)})",
        "argc": len(args),
    }
    for i, arg in enumerate(args[:6]):
        event[f"a{i}"] = arg
    if r.random() < 0.5:
        event = {
            "type": "SYSCALL",
            "host": host,
            "@timestamp": ts,
            "syscall": r.choice(("execve", "openat", "connect")),
            "exe": image,
            "comm": Path(image).name,
            "uid": str(r.choice((0, 1000, 33))),
            "key": r.choice(("exec", "net", "cfg")),
        }
    return event


def _cloudtrail(r: random.Random, ts: str) -> dict[str, Any]:
    source, name = r.choice(AWS_CALLS)
    account = "123456789012"
    role = r.choice(("app-runtime", "ci-deployer", "data-pipeline", "readonly-audit"))
    return {
        "eventVersion": "1.08",
        "eventTime": ts,
        "eventSource": source,
        "eventName": name,
        "eventType": "AwsApiCall",
        "awsRegion": r.choice(("eu-west-1", "us-east-1", "eu-central-1")),
        "sourceIPAddress": f"10.{r.randint(0, 40)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
        "userAgent": r.choice(("aws-sdk-go/1.44.0", "Boto3/1.34.0 Python/3.11", "aws-cli/2.15.0")),
        "userIdentity": {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/session-{r.randint(1, 999)}",
            "accountId": account,
        },
        "requestParameters": {"bucketName": r.choice(("logs-archive", "app-assets", "ml-data"))},
        "readOnly": name.startswith(("Get", "List", "Describe")),
        "recipientAccountId": account,
    }


def generate(n: int, seed: int = 1, attack_ratio: float = 0.0) -> Iterator[dict[str, Any]]:
    """70 % Windows, 10 % Sysmon for Linux, 10 % auditd, 10 % CloudTrail, interleaved."""
    windows = sysmon.generate(n, seed, attack_ratio)
    r = random.Random(seed * 7919)
    hosts = [f"lnx-{r.choice(('web', 'db', 'ci', 'k8s'))}-{i:03d}" for i in range(60)]
    for i in range(n):
        ts = f"2026-11-28T10:{(i // 1000) % 60:02d}:{(i // 17) % 60:02d}.{i % 1000:03d}Z"
        kind = r.random()
        if kind < 0.7:
            yield next(windows)
        elif kind < 0.8:
            yield _linux_sysmon(r, ts, r.choice(hosts))
        elif kind < 0.9:
            yield _auditd(r, ts, r.choice(hosts))
        else:
            yield _cloudtrail(r, ts)
