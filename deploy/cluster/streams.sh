#!/bin/sh
# rsigma's streams with three replicas on the 3-node NATS cluster (deploy/cluster/compose.yml runs it
# once the nodes are healthy). A stream that exists is left as it is.
set -eu
server=nats://nats-1:4222
add() {
    name=$1
    shift
    nats -s "$server" stream info "$name" >/dev/null 2>&1 && return 0
    nats -s "$server" stream add "$name" --replicas 3 --storage file --defaults "$@"
}
add rsigma-events --subjects 'events.>' --max-age 72h
add rsigma-detections --subjects detections --dupe-window 10m
add rsigma-rsigma-dlq --subjects rsigma.dlq
