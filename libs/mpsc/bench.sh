#!/usr/bin/env bash
# bench.sh reproduces the figures of docs/bench/mpsc.md (issue 12): the ring
# against the mutex ring and the buffered channel (interleaved, -count 10,
# benchstat), then the gateway ingest benchmark (gateway vs bare pipeline vs
# raw PublishAsync ceiling, p99). Run it on a quiet machine (load average
# < ~1); it records the load before and after each part.
#
#   libs/mpsc/bench.sh [OUTDIR]        # default OUTDIR: /tmp/bench-mpsc
#   MPSC_ONLY=1 libs/mpsc/bench.sh     # only the queue benchmark (~6 min)
#
# Takes about 6 minutes for the queue part and 5 for the ingest part on the
# 2-vCPU machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/tmp/bench-mpsc}
mkdir -p "$out"
cd "$root"
benchstat() { go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$@"; }

echo "queue start: $(uptime)" | tee "$out/load.txt"
go test -run '^$' -bench BenchmarkQueue -benchmem -count 10 -benchtime 200ms ./libs/mpsc/ | tee "$out/queue.txt"
echo "queue end:   $(uptime)" | tee -a "$out/load.txt"
# items/s, cpu-ns/item and significance: ring (first column) vs mutex vs chan.
benchstat -col /impl "$out/queue.txt" | tee "$out/queue-benchstat.txt"
# The interleaved ratios of the ring's own rows.
benchstat -filter '/impl:ring .unit:(x_vs_chan OR x_vs_mutex)' "$out/queue.txt" | tee "$out/queue-ratios.txt"

if [ -z "${MPSC_ONLY:-}" ]; then
	echo "ingest start: $(uptime)" | tee -a "$out/load.txt"
	(cd services/gateway && INGEST_MSGS=200000 INGEST_MSGS_ALWAYS=5000 \
		go test -run '^$' -bench BenchmarkIngest -benchtime 3x ./internal/ingestbench/) | tee "$out/ingest.txt"
	echo "ingest end:   $(uptime)" | tee -a "$out/load.txt"
fi
echo "results in $out"
