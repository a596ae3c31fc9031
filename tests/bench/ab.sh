#!/usr/bin/env bash
# tests/bench/ab.sh — is a change faster? telesink at two revisions, measured alternately.
#
#   tests/bench/ab.sh REV_A [REV_B]      REV_B defaults to the working tree
#   N=5 WORKLOADS="mixed" LAT_QPS=0 tests/bench/ab.sh HEAD~1
#
# Single runs on a small VM move by +-5% (QPS, CPU per query) and p99 by +-50%, so one run of
# each says little. This runs tests/bench/compare.sh for telesink only (no peers, no reference,
# the 100k list), A B A B ... N rounds (default 3), each revision built in its own git worktree
# under build-ab/, and prints every run and the medians per workload: QPS, server CPU µs per
# query, p99 at the fixed rate, and the query log's own count of dropped records (a change that
# starves the log writer looks faster and is not). Every compare.sh knob passes through.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
[[ $# -ge 1 ]] || { sed -n '2,13p' "$0"; exit 2; }
out=$root/build-ab
mkdir -p "$out"

tree_for() { # tree_for LABEL REV -> prints the source tree of REV (a worktree), or $root
    local rev=$2 dir=$out/tree-$1
    if [[ -z $rev ]]; then
        echo "$root"
        return
    fi
    git -C "$root" worktree remove --force "$dir" >/dev/null 2>&1 || rm -rf "$dir"
    git -C "$root" worktree add --detach "$dir" "$rev" >/dev/null 2>&1
    echo "$dir"
}

A=$(tree_for a "$1")
B=$(tree_for b "${2:-}")
# The worktrees (and their builds) go when the script ends.
cleanup() {
    local t
    for t in "$out"/tree-*; do
        git -C "$root" worktree remove --force "$t" 2>/dev/null || true
    done
}
trap cleanup EXIT
export SERVERS=project REFERENCE=0 LOAD_SIZES=${LOAD_SIZES:-100000}
id=$(date +%Y%m%d-%H%M%S)
results=()
for i in $(seq "${N:-3}"); do
    for v in a b; do
        tree=$A
        [[ $v == b ]] && tree=$B
        run=ab-$id-$v$i
        OUT=$out/bench BUILD=$tree/build-bench RUN_ID=$run bash "$tree/tests/bench/compare.sh" \
            >"$out/$run.log" 2>&1 || { echo "run $run failed: $out/$run.log" >&2; exit 1; }
        results+=("$v=$out/bench/runs/$run/results.jsonl")
        python3 "$root/tests/bench/ab.py" "$v=$out/bench/runs/$run/results.jsonl" | tail -n +3
    done
done
echo
echo "A = ${1}, B = ${2:-working tree}; medians of ${N:-3} runs each:"
python3 "$root/tests/bench/ab.py" "${results[@]}"
