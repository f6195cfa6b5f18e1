#!/usr/bin/env python3
"""Projects mt-train's data-parallel throughput on N machines from one machine's measured figures.

Model (synchronous data parallel, one all-reduce of the gradients per update, not overlapped with the
backward pass): an update's compute divides among the machines (the optimizer step too: the processes
share it, each updating its part of the weights), and a ring all-reduce over P processes
sends and receives 2(P-1)/P of the gradient bytes per process, plus 2(P-1) message latencies.

  strong scaling (the global batch stays --batch-sentences):  tokens/s = B / (T/N + A)
  weak scaling (each machine keeps a full batch: --accumulate N, or a batch N times larger):
                                                              tokens/s = N*B / (T + A)
with B the target tokens of one batch, T = B / (one machine's tokens/s), A the all-reduce time.

Usage: scripts/scaling-projection.py --tokens-per-second R --batch-tokens B --parameters P
         [--processes-per-machine 2] [--latency-us 50]
Prints a Markdown table for 2 to 64 machines at 10, 25 and 100 Gb/s.
"""
import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--tokens-per-second", type=float, required=True, help="one machine's training rate (all its processes)")
parser.add_argument("--batch-tokens", type=float, required=True, help="target tokens of one batch")
parser.add_argument("--parameters", type=int, required=True, help="the model's parameters (4 bytes of gradient each)")
parser.add_argument("--processes-per-machine", type=int, default=2)
parser.add_argument("--latency-us", type=float, default=50.0, help="one message's latency")
args = parser.parse_args()

gradient_bytes = 4 * args.parameters
compute = args.batch_tokens / args.tokens_per_second
print(f"One machine: {args.tokens_per_second:,.0f} tokens/s, {args.batch_tokens:,.0f} tokens per batch "
      f"({compute * 1000:.0f} ms of compute per update); gradients {gradient_bytes / 1e6:.1f} MB.\n")
print("| machines | link | all-reduce ms | strong scaling tokens/s (speed-up) | weak scaling tokens/s (speed-up) |")
print("|---:|---|---:|---:|---:|")
for gbps in (10, 25, 100):
    for machines in (2, 4, 8, 16, 32, 64):
        p = machines * args.processes_per_machine
        seconds = 2 * (p - 1) / p * gradient_bytes / (gbps * 1e9 / 8) + 2 * (p - 1) * args.latency_us * 1e-6
        strong = args.batch_tokens / (compute / machines + seconds)
        weak = machines * args.batch_tokens / (compute + seconds)
        print(f"| {machines} | {gbps} Gb/s | {seconds * 1000:.1f} | {strong:,.0f} ({strong / args.tokens_per_second:.1f}x) "
              f"| {weak:,.0f} ({weak / args.tokens_per_second:.1f}x) |")
