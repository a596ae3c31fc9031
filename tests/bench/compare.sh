#!/usr/bin/env bash
# tests/bench/compare.sh — telesink against unbound, dnsmasq and dnsdist (and a trivial C
# responder, the harness's ceiling) in the same run, on loopback, with the query log on.
#
#   tests/bench/compare.sh                    everything once (~5 min)
#   REPEAT=3 LOAD_REPEAT=3 tests/bench/compare.sh     medians of 3 (~13 min)
#   ROUNDS=3 tests/bench/compare.sh           medians of 3 rounds, servers interleaved (~15 min)
#
# Builds telesink (Release) in build-bench/, then runs tests/bench/harness/run.sh (a copy of
# the project's shared benchmark harness: dnsperf, an NSD upstream, the peers' own configs,
# the server pinned to CPU 1, dnsperf and the upstream to CPU 0) with telesink as the
# "project", and prints the harness's tables followed by telesink's ratios to the best peer
# (tests/bench/ratios.py). Output under build-bench/bench/ (runs, results, generated data).
# Every harness knob (SERVERS, LOAD_SIZES, WORKLOADS, DURATION, REPEAT, ...) passes through.
#
# telesink runs as deployed, but with one serving thread (the harness gives the server one
# core), rate_limit = 0 (dnsperf is a single client) and the query log on; PROJECT_CHECK
# reads the log's own counters (queries logged, and dropped because the queue was full), so a
# run that logged nothing, or fell behind, is visible. TELESINK_LOG=no runs it
# with the query log off (to see what logging costs; the published figures have it on).
# Needs: dnsperf unbound dnsmasq dnsdist nsd sqlite3 gcc (see harness/README.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build-bench}
out=${OUT:-$build/bench}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTELESINK_TESTS=OFF >/dev/null
ninja -C "$build" telesink >/dev/null

mkdir -p "$out"
conf=$out/telesink-bench.conf
# cache_size: the capacity the harness gives dnsdist's packet cache (100,000 answers; one costs
# telesink ~220 bytes), since the mixed workload's popular set alone is 40,000 answers and the
# default 8M holds ~38,000.
cat >"$conf" <<CONF
[server]
threads = 1
rate_limit = 0
cache_size = ${TELESINK_CACHE:-24M}
[log]
enabled = ${TELESINK_LOG:-yes}
CONF

export PROJECT_NAME=telesink
# The harness's lists block each name and its subdomains: telesink's own list format (*.list)
# reads them that way (a plain third-party file would be exact names, as Pi-hole reads it).
export PROJECT_PREPARE='cp {blocklist} {rundir}/bench.list'
export PROJECT_CMD="$build/telesink serve --config $conf --listen {addr}:{port} --upstream {upstream} --lists {rundir}/bench.list --db {rundir}/telesink.db --log-level warn"
export PROJECT_CHECK='sqlite3 {rundir}/telesink.db "select '"'"'logged '"'"' || sum(logged) || '"'"', dropped '"'"' || sum(dropped) from counters"'
export RUN_ID=${RUN_ID:-$(date +%Y%m%d-%H%M%S)}
export RUNS_DIR=$out/runs RESULTS_DIR=$out/results DATA_DIR=$out/data
mkdir -p "$RUNS_DIR" "$RESULTS_DIR" "$DATA_DIR"
export LOAD_SIZES=${LOAD_SIZES:-"100000 1000000"}

ROUNDS=${ROUNDS:-1}
if ((ROUNDS <= 1)); then
    bash "$root/tests/bench/harness/run.sh"
    echo
    python3 "$root/tests/bench/ratios.py" "$RUNS_DIR/$RUN_ID/results.jsonl"
    exit 0
fi

# ROUNDS > 1: the whole harness run ROUNDS times, the servers' order rotated each time (so
# each server is measured early, midway and late), then one report from all of them.
servers=(${SERVERS:-unbound dnsmasq dnsdist} project)
[[ ${REFERENCE:-1} == 1 ]] && servers+=(reference)
[[ ${FWDREF:-${REFERENCE:-1}} == 1 ]] && servers+=(fwdref)
base=$RUN_ID
rounds=()
for ((r = 0; r < ROUNDS; r++)); do
    k=$((r % ${#servers[@]}))
    order="${servers[*]:k} ${servers[*]:0:k}"
    echo "== round $((r + 1)) of $ROUNDS: $order" >&2
    SERVERS=$order RUN_ID=$base-r$((r + 1)) bash "$root/tests/bench/harness/run.sh" >/dev/null
    rounds+=("$RUNS_DIR/$base-r$((r + 1))/results.jsonl")
done
mkdir -p "$RUNS_DIR/$base"
python3 "$root/tests/bench/merge.py" "$base" "${rounds[@]}" >"$RUNS_DIR/$base/results.jsonl"
python3 "$root/tests/bench/harness/lib/bench.py" report "$RUNS_DIR/$base/results.jsonl" \
    --md "$RUNS_DIR/$base/results.md"
cp "$RUNS_DIR/$base/results.md" "$RESULTS_DIR/$base.md"
echo
python3 "$root/tests/bench/ratios.py" "$RUNS_DIR/$base/results.jsonl"
