#!/usr/bin/env bash
# Runs mt-train on two "hosts" of this machine: two network namespaces joined by a veth pair, with no
# shared network stack, Open MPI reaching the second through an rsh agent that enters its namespace.
# It shows (and the tests check) that training runs across machines over TCP as it does on one.
# Needs root (ip netns). The namespaces are removed at the end, also on failure.
#
# Usage: scripts/mpi-two-hosts.sh MT_TRAIN_ARGS...
#   e.g. scripts/mpi-two-hosts.sh --data runs/en-de/data --model-dir /tmp/two-hosts --max-updates 50
# Environment: MT_TRAIN (default .build/release/mt-train).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${MT_TRAIN:-.build/release/mt-train}")"
[ -x "$bin" ] || { echo "mpi-two-hosts: $bin is not built" >&2; exit 1; }

# Names no other run on the machine uses; 198.18.0.0/15 is the range RFC 2544 sets aside for tests.
a="nmta$$"; b="nmtb$$"; va="nva$$"; vb="nvb$$"
subnet=$(( $$ % 250 + 1 ))
work="$(mktemp -d)"
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ip netns add "$a"; ip netns add "$b"
ip link add "$va" type veth peer name "$vb"
ip link set "$va" netns "$a"; ip link set "$vb" netns "$b"
ip -n "$a" addr add "198.18.$subnet.1/24" dev "$va"; ip -n "$b" addr add "198.18.$subnet.2/24" dev "$vb"
for n in "$a" "$b"; do ip -n "$n" link set lo up; done
ip -n "$a" link set "$va" up; ip -n "$b" link set "$vb" up

printf '%s slots=1\n%s slots=1\n' "$a" "$b" > "$work/hostfile"
# The agent is called as `agent HOST COMMAND...`: it runs Open MPI's daemon inside that namespace.
printf '#!/bin/sh\nh="$1"; shift; exec ip netns exec "$h" sh -c "$*"\n' > "$work/agent.sh"
chmod +x "$work/agent.sh"

# rtc_hwloc_vmhole none: Open MPI 4.1's daemon otherwise maps its shared copy of the hardware topology
# into the "biggest" hole of its address space, which can lie where its stack grows; it then crashed
# in hwloc_shmem_topology_write (SIGSEGV) in one of eight runs of the two-host test here.
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ip netns exec "$a" \
    mpirun --hostfile "$work/hostfile" -np 2 --mca plm_rsh_agent "$work/agent.sh" --mca rtc_hwloc_vmhole none \
    --mca btl tcp,self --mca btl_tcp_if_include "198.18.$subnet.0/24" --mca oob_tcp_if_include "198.18.$subnet.0/24" \
    -x PATH "$bin" --threads 1 "$@"
