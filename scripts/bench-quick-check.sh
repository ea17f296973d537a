#!/usr/bin/env bash
# What berthd's start-up integrity check (PRAGMA quick_check, daemon/src/preflight.rs) costs
# on a large store: makes a root with N containers (default 100000) and starts berthd on it
# three times, printing the check's time from its log.
#   scripts/bench-quick-check.sh [BERTHD] [N]
set -euo pipefail
B=${1:-target/debug/berthd}; N=${2:-100000}
D=$(mktemp -d /tmp/berth-qc-XXXX)
start() { "$B" --root "$D/root" --state "$D/state" --socket "$D/s.sock" 2>>"$D/log" & P=$!
  for _ in $(seq 600); do [ -S "$D/s.sock" ] && break; sleep 0.1; done; kill "$P"; wait "$P" || true; }
start
python3 "$(dirname "$0")/bench_quick_check_fill.py" "$D/root/meta.db" "$N"
for _ in 1 2 3; do start; done
grep -o 'database checked.*took_ms=[0-9]*' "$D/log" | sed 's/\x1b\[[0-9;]*m//g'
echo "left in $D (remove it when done; its keeper exits by itself when idle)"
