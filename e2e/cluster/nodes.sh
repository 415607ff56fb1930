#!/usr/bin/env bash
# Prints the simulated node pools as Node manifests, labelled the way NVIDIA GPU feature
# discovery labels real GPU nodes and tainted the way GPU pools usually are:
#   gpu-h100: 2 nodes x 8 NVIDIA-H100-80GB-HBM3 (81559 MiB)
#   gpu-l40s: 2 nodes x 4 NVIDIA-L40S (46068 MiB)
#   cpu:      2 nodes, no GPUs
# The scale benchmark asks for bigger GPU pools: nodes.sh [H100_NODES [L40S_NODES]].
set -euo pipefail
. "$(dirname "$0")/env.sh"

subnet=0
# node NAME POOL INSTANCE_TYPE CPU MEMORY GPUS [PRODUCT GPU_MEMORY_MIB FAMILY]
node() {
  local name=$1 pool=$2 itype=$3 cpu=$4 mem=$5 gpus=$6 product=${7:-} gmem=${8:-} family=${9:-}
  subnet=$((subnet + 1))
  cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: $itype
    switchyard.dev/node-pool: $pool
    type: kwok
YAML
  if ((gpus > 0)); then
    cat <<YAML
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: $product
    nvidia.com/gpu.count: "$gpus"
    nvidia.com/gpu.memory: "$gmem"
    nvidia.com/gpu.family: $family
YAML
  fi
  cat <<YAML
spec:
  podCIDR: 10.244.$subnet.0/24
  podCIDRs: [10.244.$subnet.0/24]
YAML
  if ((gpus > 0)); then
    cat <<YAML
  taints:
  - {key: nvidia.com/gpu, value: present, effect: NoSchedule}
YAML
  fi
  cat <<YAML
status:
  capacity: &res
    cpu: "$cpu"
    memory: $mem
    pods: "110"
    ephemeral-storage: 1Ti
YAML
  ((gpus > 0)) && echo "    nvidia.com/gpu: \"$gpus\""
  cat <<YAML
  allocatable: *res
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: $K8S_VERSION
YAML
}

h100=${1:-2} l40s=${2:-2}
# Each node gets its own /24 of the pod network: 250 nodes at most. A node's podCIDR cannot
# change, so the first six keep their subnets and extra nodes come after them.
((h100 + l40s + 2 <= 250)) || { echo "at most 248 GPU nodes" >&2; exit 2; }
h100_node() { node "gpu-h100-$1" gpu-h100 p5.48xlarge 192 2048Gi 8 NVIDIA-H100-80GB-HBM3 81559 hopper; }
l40s_node() { node "gpu-l40s-$1" gpu-l40s g6e.12xlarge 48 384Gi 4 NVIDIA-L40S 46068 ada-lovelace; }
for i in 1 2; do h100_node "$i"; done
for i in 1 2; do l40s_node "$i"; done
for i in 1 2; do node "cpu-$i" cpu m7i.4xlarge 16 64Gi 0; done
for ((i = 3; i <= h100; i++)); do h100_node "$i"; done
for ((i = 3; i <= l40s; i++)); do l40s_node "$i"; done
