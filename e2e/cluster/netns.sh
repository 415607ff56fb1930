#!/usr/bin/env bash
# The simulated pod network. kwok gives pods addresses in $POD_CIDR but nothing answers
# there; this creates one network namespace joined to the host by a veth pair and routes
# $POD_CIDR into it, so a mock inference server bound to a pod's IP inside the namespace
# answers HTTP from the host (the controller's warm-up, the gateway). A blackhole route
# under it keeps pod traffic on this machine whenever the veth is missing while the
# cluster exists.
#
# That namespace is also the node's router for pods that run a real image (pod_runtime.py):
# each such pod gets a namespace of its own, joined to this one by a veth whose pod end holds
# the pod's IP, so every pod may bind 0.0.0.0 and its ports as a real pod does. Those pods
# reach the host at $POD_HOST_ADDR and nothing beyond it.
#   netns.sh up | down | add-ip IP | del-ip IP
set -euo pipefail
. "$(dirname "$0")/env.sh"

NETNS=${SWITCHYARD_NETNS:-switchyard-pods}
HOST_IF=swy-host
NS_IF=swy-pods
HOST_ADDR=$POD_HOST_ADDR
NS_ADDR=169.254.244.2

case ${1:-} in
up)
  ip netns list | grep -qw "$NETNS" && exit 0
  ip route replace blackhole "$POD_CIDR" metric 4000
  ip netns add "$NETNS"
  ip link add "$HOST_IF" type veth peer name "$NS_IF"
  ip link set "$NS_IF" netns "$NETNS"
  ip addr add "$HOST_ADDR/30" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip netns exec "$NETNS" ip addr add "$NS_ADDR/30" dev "$NS_IF"
  ip netns exec "$NETNS" ip link set "$NS_IF" up
  ip netns exec "$NETNS" ip link set lo up
  # Routes between the host and the pods' own namespaces; strict reverse-path filtering
  # would drop a pod's packets arriving on its veth when the kernel's default is strict.
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  # A pod address nobody serves yet (kwok reports a pod Running before the agent has bound
  # its IP) drops packets silently, as before forwarding was on: the client's SYN retry
  # finds the server, where forwarding's ICMP "network unreachable" would fail it at once.
  ip netns exec "$NETNS" ip route replace blackhole "$POD_CIDR"
  # Only the host's veth address is reachable from inside: no default route out.
  ip route replace "$POD_CIDR" via "$NS_ADDR" dev "$HOST_IF"
  ;;
down)
  # Pods' own namespaces (and whatever a killed agent left running in them) first.
  for ns in $(ip netns list | awk -v p="$POD_NETNS_PREFIX" 'index($1, p) == 1 {print $1}'); do
    pids=$(ip netns pids "$ns" || true)
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
  done
  # Anything still running inside (mock servers orphaned by a killed agent) goes first.
  if ip netns list | grep -qw "$NETNS"; then
    pids=$(ip netns pids "$NETNS" || true)
    [[ -n $pids ]] && kill $pids 2>/dev/null && sleep 0.5
    pids=$(ip netns pids "$NETNS" || true)
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null
  fi
  ip route del "$POD_CIDR" via "$NS_ADDR" dev "$HOST_IF" 2>/dev/null || true
  ip link del "$HOST_IF" 2>/dev/null || true
  ip netns del "$NETNS" 2>/dev/null || true
  ip route del blackhole "$POD_CIDR" metric 4000 2>/dev/null || true
  ;;
add-ip)
  ip netns exec "$NETNS" ip addr replace "$2/32" dev lo
  ;;
del-ip)
  ip netns exec "$NETNS" ip addr del "$2/32" dev lo 2>/dev/null || true
  ;;
*)
  echo "usage: $0 up|down|add-ip IP|del-ip IP" >&2
  exit 2
  ;;
esac
