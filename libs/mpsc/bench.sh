#!/usr/bin/env bash
# bench.sh records the figures of docs/bench/mpsc.md (issue 12): the ring
# (producer lanes) against the ring's shared lane, the mutex ring with batch
# drain and the buffered channel, interleaved in one harness, -count 10,
# benchstat; then the gateway ingest benchmark (gateway vs bare pipeline vs
# raw PublishAsync ceiling, p99). Run it on a quiet machine; it records the
# load average before and after each part.
#
#   libs/mpsc/bench.sh [OUTDIR]        # default OUTDIR: /tmp/bench-mpsc; ~5 min
#   MPSC_ONLY=1 libs/mpsc/bench.sh     # only the queue benchmark (~2-3 min)
#   INGEST_RUNS=20 libs/mpsc/bench.sh  # and 20 more ingest runs, with medians (~2.5 min more)
#   BENCH_WRAP="flock /work/team/bench.lock /work/team/inbench.sh" libs/mpsc/bench.sh
#                                      # the team machine: the timed runs under the lock
#
# Both test binaries are built first (go test -c), so only the runs are
# under BENCH_WRAP, never the compiler.
#
# Every sub-benchmark moves a fixed number of items (-benchtime Nx: no
# calibration runs, so the time is predictable) through every
# implementation in rotating rounds; the ratios compare the same rounds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/tmp/bench-mpsc}
items=${MPSC_ITEMS:-2000000}
mkdir -p "$out"
cd "$root"
benchstat() { go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$@"; }
read -r -a wrap <<<"${BENCH_WRAP:-}"
# timed LABEL CMD...: CMD under BENCH_WRAP, with the load average written to
# load.txt once the lock is held (so the figure's load is the run's).
timed() {
	local label=$1
	shift
	"${wrap[@]}" bash -c 'f=$1; shift; echo "$0 start: $(uptime)" | tee -a "$f" >&2; "$@"; rc=$?; echo "$0 end:   $(uptime)" | tee -a "$f" >&2; exit $rc' \
		"$label" "$out/load.txt" "$@"
}

go test -c -o "$out/mpsc.test" ./libs/mpsc/
[ -n "${MPSC_ONLY:-}" ] || (cd services/gateway && go test -c -o "$out/ingestbench.test" ./internal/ingestbench/)
echo "machine: $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(go version)" | tee "$out/load.txt"
# The machine's core-to-core line transfer before and after: it decides the
# 64-byte rows, and a guest's vCPUs can be closer or farther apart from one
# hour to the next (docs/mpsc.md, fourth round).
linexfer() { (cd libs/mpsc && "${wrap[@]}" "$out/mpsc.test" -test.run '^$' -test.bench BenchmarkLineTransfer -test.benchtime 3x) |
	awk -v when="$1" '/one-way-ns/ { for (i = 1; i < NF; i++) if ($(i+1) == "one-way-ns") print "line transfer " when ": " $i " ns one way" }' | tee -a "$out/load.txt"; }
linexfer before
(cd libs/mpsc && timed queue "$out/mpsc.test" -test.run '^$' -test.bench BenchmarkQueue -test.benchmem \
	-test.count 10 -test.benchtime "${items}x") | tee "$out/queue.txt"
linexfer after
# items/s, cpu-ns/item and p-values: ring (first column) vs mutex vs chan vs shared.
benchstat -col /impl "$out/queue.txt" | tee "$out/queue-benchstat.txt"
# The interleaved ratios of the ring's own rows (targets at 4 producers:
# x_vs_chan >= 2, x_vs_mutex >= 1.3; at 1 and 16: x_vs_mutex >= 1).
benchstat -filter '/impl:ring .unit:(x_vs_chan OR x_vs_mutex OR x_vs_shared)' "$out/queue.txt" | tee "$out/queue-ratios.txt"
# The same, as plain medians per row, without benchstat.
awk '/impl=ring/ { for (i = 3; i < NF; i++) if ($(i+1) ~ /^x_vs_/) { k = $1 " " $(i+1); v[k] = v[k] " " $i } }
	END { for (k in v) { n = split(v[k], a, " "); asort(a); printf "%-55s median %.3f (min %.3f max %.3f, n=%d)\n", k, (a[int((n+1)/2)] + a[int(n/2)+1]) / 2, a[1], a[n], n } }' \
	"$out/queue.txt" | sed 's/^BenchmarkQueue\///' | sort | tee "$out/queue-medians.txt"

if [ -z "${MPSC_ONLY:-}" ]; then
	(cd services/gateway/internal/ingestbench && INGEST_MSGS=${INGEST_MSGS:-100000} INGEST_MSGS_ALWAYS=5000 \
		timed ingest "$out/ingestbench.test" -test.run '^$' -test.bench BenchmarkIngest -test.benchtime 3x) | tee "$out/ingest.txt"
	# INGEST_RUNS=N: N more runs of the default-sync row (the ratio to the
	# bare shaped pipeline moves by a few percent from run to run), then
	# the median, min and max of each ratio.
	if [ "${INGEST_RUNS:-0}" -gt 0 ]; then
		(cd services/gateway/internal/ingestbench && INGEST_MSGS=${INGEST_MSGS:-100000} \
			timed ingest-series bash -c 'for i in $(seq "$0"); do "$1" -test.run "^\$" -test.bench "BenchmarkIngest/sync=default" -test.benchtime 3x | grep "^Benchmark"; done' \
			"$INGEST_RUNS" "$out/ingestbench.test") | tee "$out/ingest-series.txt"
		for k in gateway/bareshaped gateway/ceiling gateway/bare gateway_p99_ms gateway_cpu_us/msg bareshaped_cpu_us/msg; do
			awk -v k="$k" '{ for (i = 2; i <= NF; i++) if ($i == k) print $(i-1) }' "$out/ingest-series.txt" | sort -g |
				awk -v k="$k" '{ a[NR] = $1 } END { printf "%-24s median %.3f (min %.3f max %.3f, n=%d)\n", k, (a[int((NR+1)/2)] + a[int(NR/2)+1]) / 2, a[1], a[NR], NR }'
		done | tee "$out/ingest-medians.txt"
	fi
fi
cat "$out/load.txt"
echo "results in $out"
