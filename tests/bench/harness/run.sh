#!/usr/bin/env bash
# Side-by-side DNS sinkhole benchmark on loopback. See bench/README.md.
#
#   bench/run.sh                      # defaults: unbound dnsmasq dnsdist + reference
#   SERVERS="dnsmasq" LOAD_SIZES="100000" TP_SIZE=100000 bench/run.sh
#   PROJECT_CMD='/path/sinkhole -l {addr}:{port} -u {upstream} -b {blocklist}' bench/run.sh
#
# Environment (defaults in brackets):
#   SERVERS       servers to measure ["unbound dnsmasq dnsdist"]; "project" is added when
#                 PROJECT_CMD is set, "reference" when REFERENCE=1 [1] (its load time is the
#                 harness floor: taskset + bash wrapper + probe, ~10 ms), and "fwdref" (the
#                 reference that forwards the mixed workload's misses) when FWDREF=1 [=REFERENCE]
#   LOAD_SIZES    blocklist sizes for load time + RSS ["10000 100000 1000000"]
#   TP_SIZE       blocklist size loaded for the throughput runs [100000]; 0 = no throughput
#   WORKLOADS     ["blocked allowed-cached mixed"]
#   DURATION      seconds per saturating dnsperf run [10]
#   CLIENTS       dnsperf -c [10]      OUTSTANDING  dnsperf -q [100]    QTIMEOUT  dnsperf -t [2]
#   LAT_QPS       offered rate of the fixed-rate latency runs (dnsperf -Q) [10000]; 0 = skip
#   LAT_SECS      seconds per latency run [5]
#   REPEAT        repetitions of every dnsperf run (the report shows the median) [1]
#   LOAD_REPEAT   start/ready/stop cycles per (server,size) (median reported) [1]
#   DNSPERF_SRC   source address for dnsperf (-a), e.g. 127.0.0.2 to look like another client []
#   DNSPERF_EXTRA extra dnsperf flags, e.g. "-e" for EDNS []
#   PIN           1 = taskset: server on SERVER_CPU [1], dnsperf+upstream on CLIENT_CPU [0]
#   UPSTREAM_PORT [5353]   ports: unbound 5301 dnsmasq 5302 dnsdist 5303 project 5310 reference 5390 fwdref 5391
#   RUN_ID        name of the output folder bench/runs/RUN_ID [date-time]
#   RUNS_DIR, RESULTS_DIR, DATA_DIR  where runs, reports and generated data go [bench/runs, bench/results, bench/data]
#   KEEP_LISTS    1 = keep the converted blocklists (>1 MB) in bench/runs/RUN_ID/* [0]
# Output: bench/runs/RUN_ID/{results.jsonl,results.md,<server>-<size>/...} and the
# markdown report on stdout (also copied to bench/results/RUN_ID.md).
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# ------------------------------------------------------------------ settings
SERVERS=${SERVERS:-"unbound dnsmasq dnsdist"}
REFERENCE=${REFERENCE:-1}
FWDREF=${FWDREF:-$REFERENCE}
LOAD_SIZES=${LOAD_SIZES:-"10000 100000 1000000"}
TP_SIZE=${TP_SIZE:-100000}
WORKLOADS=${WORKLOADS:-"blocked allowed-cached mixed"}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-10}
OUTSTANDING=${OUTSTANDING:-100}
QTIMEOUT=${QTIMEOUT:-2}
LAT_QPS=${LAT_QPS:-10000}
LAT_SECS=${LAT_SECS:-5}
REPEAT=${REPEAT:-1}
LOAD_REPEAT=${LOAD_REPEAT:-1}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-600}
SETTLE=${SETTLE:-1}
DNSPERF_SRC=${DNSPERF_SRC:-}
DNSPERF_EXTRA=${DNSPERF_EXTRA:-}
GEN_SIZES=${GEN_SIZES:-"10000 100000 1000000"}
RUN_ID=${RUN_ID:-$(date +%Y%m%d-%H%M%S)}
OUT=${RUNS_DIR:-$BENCH_DIR/runs}/$RUN_ID
RESULTS=$OUT/results.jsonl

declare -A PORT=([unbound]=5301 [dnsmasq]=5302 [dnsdist]=5303 [project]=5310 [reference]=5390 [fwdref]=5391)

# ================================================================== PROJECT HOOK
# The project's sinkhole is measured like any peer once PROJECT_CMD is set:
#
#   PROJECT_CMD='/path/to/sinkhole --listen {addr}:{port} --upstream {upstream} \
#                --blocklist {blocklist} --db {rundir}/hits.sqlite'  bench/run.sh
#
# Placeholders: {blocklist} (plain list, one domain per line), {addr}, {port},
# {upstream} (127.0.0.1:5353), {upstream_addr}, {upstream_port}, {rundir}.
# The command must stay in the foreground and stop on SIGTERM.
#   PROJECT_NAME     label in the tables [project]
#   PROJECT_PREPARE  optional template run before the start, not timed (peers/project/peer.sh)
#   PROJECT_CHECK    optional template run after the throughput runs while the server is
#                    still up; its output is recorded, e.g.
#                    PROJECT_CHECK='sqlite3 {rundir}/hits.sqlite "select count(*) from hits"'
PROJECT_NAME=${PROJECT_NAME:-project}
if [[ -n ${PROJECT_CMD:-} && " $SERVERS " != *" project "* ]]; then
    SERVERS="$SERVERS project"
fi

# start_project CMD_TEMPLATE BLOCKLIST PORT [RUNDIR]
#   Starts the given command (placeholders as above) with any blocklist file on any
#   port, pinned like the other servers, and waits until it answers NXDOMAIN for the
#   list's last entry. Sets PROJECT_PID and PROJECT_READY (seconds); stop it with
#   `stop_pid "$PROJECT_PID"`. Usable from another script after `source bench/run.sh`
#   (sourcing defines the functions and does not run the benchmark), e.g.
#     source bench/run.sh; start_project './sinkhole -p {port} -b {blocklist}' my.list 5399
#     dnsperf -s 127.0.0.1 -p 5399 -d bench/data/q-blocked-100000.txt -l 10; stop_pid "$PROJECT_PID"
start_project() {
    local cmd=$1 bl=$2 port=$3 rundir=${4:-$OUT/$PROJECT_NAME-manual}
    PROJECT_CMD=$cmd
    export PROJECT_CMD
    PORT[project]=$port
    mkdir -p "$(dirname "$RESULTS")"
    start_blocklist project "$bl" "$rundir" "$(last_entry "$bl")" manual || return 1
    PROJECT_PID=$SRV_PID PROJECT_READY=$SRV_READY
    log "$PROJECT_NAME ready in ${PROJECT_READY}s (pid $PROJECT_PID) on $ADDR:$port"
}
# ================================================================== end of hook

label() { [[ $1 == project ]] && echo "$PROJECT_NAME" || echo "$1"; }

json_err() { # json_err SERVER WHAT MSG
    $PY -c 'import json,sys; print(json.dumps({"kind":"error","server":sys.argv[1],"what":sys.argv[2],"msg":sys.argv[3]}))' "$@" >>"$RESULTS"
}

manifest_get() { # manifest_get FILE KEY
    $PY -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["files"].get(sys.argv[2],{}).get(sys.argv[3],""))' \
        "$DATA_DIR/manifest.json" "$1" "$2"
}

last_entry() { # last_entry FILE: last domain of a blocklist (plain or hosts format)
    awk '!/^[[:space:]]*(#|$)/ { d = $NF } END { print d }' "$1"
}

# start_blocklist NAME BLOCKLIST RUNDIR PROBE TAG -> sets SRV_PID, SRV_READY (s), SRV_PREP (s)
#   prepare (timed separately) + pinned exec of peers/NAME/peer.sh + wait for NXDOMAIN on PROBE.
start_blocklist() {
    local name=$1 bl=$2 rundir=$3 probe=$4 tag=$5 port=${PORT[$1]} t0 t1
    mkdir -p "$rundir"
    SRV_PID="" SRV_READY="" SRV_PREP=""
    if port_busy "$port"; then
        json_err "$(label "$name")" "start $tag" "port $port already in use"
        log "port $port busy, skipping $name"
        return 1
    fi
    t0=$(now)
    if ! "$BENCH_DIR/peers/$name/peer.sh" prepare "$bl" "$rundir" "$port" "$UPSTREAM_PORT" >"$rundir/prepare.log" 2>&1; then
        json_err "$(label "$name")" "prepare $tag" "$(tail -3 "$rundir/prepare.log" | tr '\n' ' ')"
        log "$name: prepare failed: $(tail -3 "$rundir/prepare.log")"
        return 1
    fi
    t1=$(now)
    SRV_PREP=$($PY -c "print(round($t1 - $t0, 3))")
    t0=$(now)
    # shellcheck disable=SC2046
    $(pin "$SERVER_CPU" "$BENCH_DIR/peers/$name/peer.sh" exec "$rundir") >"$rundir/stdout.log" 2>&1 &
    SRV_PID=$!
    bench_track "$SRV_PID"
    if ! SRV_READY=$(wait_ready "$port" "$probe" NXDOMAIN "$t0" "$SRV_PID" "$LOAD_TIMEOUT" 2>"$rundir/wait.err"); then
        json_err "$(label "$name")" "start $tag" "$(cat "$rundir/wait.err") | log: $(tail -5 "$rundir/stdout.log" | tr '\n' ' ')"
        log "$name did not become ready: $(cat "$rundir/wait.err"); log: $(tail -3 "$rundir/stdout.log")"
        stop_pid "$SRV_PID"
        SRV_PID=""
        return 1
    fi
    return 0
}

# start_server NAME SIZE RUNDIR: start_blocklist with the generated list of SIZE entries
start_server() {
    start_blocklist "$1" "$DATA_DIR/blocklist-$2.txt" "$3" "$(head -1 "$DATA_DIR/probe-$2.txt")" "$2"
}

dnsperf_cmd() { # dnsperf_cmd PORT ARGS... -> prints the full (pinned) dnsperf argv
    local port=$1; shift
    local src=()
    [[ -n $DNSPERF_SRC ]] && src=(-a "$DNSPERF_SRC")
    # shellcheck disable=SC2086
    pin "$CLIENT_CPU" dnsperf -s "$ADDR" -p "$port" "${src[@]}" -c "$CLIENTS" -q "$OUTSTANDING" -t "$QTIMEOUT" $DNSPERF_EXTRA "$@"
}

smoke() { # smoke NAME PORT SIZE -> records a correctness check
    local name=$1 port=$2 size=$3 b a s ok=1
    b=$(sed -n 1p "$DATA_DIR/probe-$size.txt")
    a=$(sed -n 2p "$DATA_DIR/probe-$size.txt")
    local rb ra rs
    rb=$($BENCHPY query --port "$port" --name "$b" | cut -d' ' -f1)
    rs=$($BENCHPY query --port "$port" --name "x1.sub.$b" | cut -d' ' -f1)
    ra=$($BENCHPY query --port "$port" --name "$a" | cut -d' ' -f1)
    [[ $rb == NXDOMAIN && $rs == NXDOMAIN ]] || ok=0
    [[ $name == reference || $name == fwdref || $ra == NOERROR ]] || ok=0
    log "smoke $name: blocked=$rb subdomain-of-blocked=$rs allowed=$ra"
    if [[ $ok == 0 ]]; then
        json_err "$(label "$name")" "smoke $size" "blocked=$rb subdomain=$rs allowed=$ra (want NXDOMAIN NXDOMAIN NOERROR)"
    fi
}

run_workloads() { # run_workloads NAME PID SIZE RUNDIR
    local name=$1 pid=$2 size=$3 rundir=$4 port=${PORT[$1]} wl file latfile warm expect rep
    for wl in $WORKLOADS; do
        case $wl in
        blocked) file=q-blocked-$size.txt latfile=$file warm="" ;;
        allowed-cached) file=q-allowed-cached.txt latfile=$file warm=q-allowed-cached.txt ;;
        mixed) file=q-mixed-$size.txt latfile=q-mixed-lat-$size.txt warm=q-warm.txt ;;
        *) json_err "$(label "$name")" "workload" "unknown workload $wl"; continue ;;
        esac
        [[ $name == fwdref && $wl != mixed ]] && continue # it only shows what forwarding costs
        expect=$(manifest_get "$file" expect_nxdomain)
        if [[ -n $warm && $name != reference && $name != fwdref ]]; then
            # shellcheck disable=SC2046
            $(dnsperf_cmd "$port" -d "$DATA_DIR/$warm" -n 1) >"$rundir/warm-$wl.txt" 2>&1
        fi
        for ((rep = 1; rep <= REPEAT; rep++)); do
            # The mixed workload's cache misses must be new in every repetition (the server
            # keeps its cache between them): repetition K reads gen.py's -rK streams.
            local tpf=$file lf=$latfile
            if [[ $wl == mixed && $rep -gt 1 ]]; then
                if [[ -f $DATA_DIR/${file%.txt}-r$rep.txt ]]; then
                    tpf=${file%.txt}-r$rep.txt lf=${latfile%.txt}-r$rep.txt
                else
                    log "$name $wl: no stream for rep $rep: its never-seen names repeat rep 1's"
                fi
            fi
            log "$name $wl: ${DURATION}s saturating run (rep $rep, $tpf)"
            expect=$(manifest_get "$tpf" expect_nxdomain)
            # shellcheck disable=SC2046
            $BENCHPY perf --out "$rundir/tp-$wl-$rep.json" --server-pid "$pid" --expect-nx "${expect:-0}" \
                -- $(dnsperf_cmd "$port" -d "$DATA_DIR/$tpf" -l "$DURATION") >/dev/null
            if [[ $LAT_QPS != 0 ]]; then
                log "$name $wl: ${LAT_SECS}s at ${LAT_QPS} qps (latency)"
                local lexp
                lexp=$(manifest_get "$lf" expect_nxdomain)
                # shellcheck disable=SC2046
                $BENCHPY perf --out "$rundir/lat-$wl-$rep.json" --server-pid "$pid" --expect-nx "${lexp:-0}" \
                    -- $(dnsperf_cmd "$port" -d "$DATA_DIR/$lf" -l "$LAT_SECS" -Q "$LAT_QPS" -v) >/dev/null
            fi
            $PY - "$(label "$name")" "$wl" "$size" "$rep" "$rundir/tp-$wl-$rep.json" "$rundir/lat-$wl-$rep.json" >>"$RESULTS" <<'EOF'
import json, os, sys
name, wl, size, rep, tp, lat = sys.argv[1:]
def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return {}
print(json.dumps({"kind": "perf", "server": name, "workload": wl, "size": int(size), "rep": int(rep),
                  "tp": load(tp), "lat": load(lat)}))
EOF
            local q
            q=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d.get("qps",0)), d.get("lost"), d.get("rcodes"))' "$rundir/tp-$wl-$rep.json" 2>/dev/null)
            log "$name $wl: qps lost rcodes = $q"
        done
    done
}

measure_server() { # measure_server NAME
    local name=$1 size sizes rundir mem mem2 i readies
    if [[ $name == reference || $name == fwdref ]]; then # list is ignored: one size; its load time = harness floor
        sizes=$TP_SIZE
        [[ $TP_SIZE == 0 ]] && sizes=$(printf '%s\n' $LOAD_SIZES | sort -n | head -1)
    else
        sizes=$(printf '%s\n' $LOAD_SIZES $([[ $TP_SIZE != 0 ]] && echo "$TP_SIZE") | sort -n -u)
    fi
    for size in $sizes; do
        rundir=$OUT/$name-$size
        readies=()
        local cycles=1
        [[ $name != reference && $name != fwdref && " $LOAD_SIZES " == *" $size "* ]] && cycles=$LOAD_REPEAT
        for ((i = 1; i < cycles; i++)); do # extra load-only cycles
            if start_server "$name" "$size" "$rundir"; then
                readies+=("$SRV_READY")
                stop_pid "$SRV_PID"
            fi
        done
        log "$name: starting with $size entries"
        start_server "$name" "$size" "$rundir" || continue
        readies+=("$SRV_READY")
        sleep "$SETTLE"
        mem=$($BENCHPY mem "$SRV_PID")
        log "$name $size: ready in ${SRV_READY}s (prep ${SRV_PREP}s) mem $mem"
        mem2='{}'
        local check=""
        if [[ $size == "$TP_SIZE" ]]; then
            smoke "$name" "${PORT[$name]}" "$size"
            run_workloads "$name" "$SRV_PID" "$size" "$rundir"
            mem2=$($BENCHPY mem "$SRV_PID")
            if [[ $name == project && -n ${PROJECT_CHECK:-} ]]; then
                local c=$PROJECT_CHECK
                c=${c//'{rundir}'/$rundir}
                c=${c//'{blocklist}'/$DATA_DIR/blocklist-$size.txt}
                check=$(bash -c "$c" 2>&1 | tail -3 | tr '\n' ' ')
                log "project check: $check"
            fi
        fi
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            json_err "$(label "$name")" "size $size" "server died during the run (see $rundir/stdout.log)"
        fi
        stop_pid "$SRV_PID" 15
        # converted copies of the list are big (1M: 20-40 MB each); keep with KEEP_LISTS=1
        [[ ${KEEP_LISTS:-0} == 1 ]] || find "$rundir" -maxdepth 1 -name 'blocklist.*' -size +1M -delete
        $PY - "$(label "$name")" "$size" "$SRV_PREP" "$mem" "$mem2" "$check" "${readies[@]}" >>"$RESULTS" <<'EOF'
import json, statistics, sys
name, size, prep, mem, mem2, check = sys.argv[1:7]
readies = [float(x) for x in sys.argv[7:]]
mem, mem2 = json.loads(mem), json.loads(mem2)
r = {"kind": "load", "server": name, "size": int(size), "prep_s": float(prep),
     "ready_s": statistics.median(readies), "ready_all": readies,
     "rss_kb": mem.get("rss_kb"), "hwm_kb": mem.get("hwm_kb"), "procs": mem.get("procs"),
     "rss_after_kb": mem2.get("rss_kb")}
if len(readies) > 1:
    r["note"] = "ready min/max %.3f/%.3f over %d starts" % (min(readies), max(readies), len(readies))
if check:
    r["note"] = (r.get("note", "") + " check: " + check).strip()
print(json.dumps(r))
EOF
    done
}

# ------------------------------------------------------------------ main
main() {
    trap 'bench_cleanup' EXIT
    trap 'log "interrupted"; exit 130' INT TERM

    for tool in dnsperf nsd taskset ss; do command -v $tool >/dev/null || die "$tool not found (see README: apt-get install ...)"; done
    for s in $SERVERS; do
        case $s in
        unbound) command -v unbound >/dev/null || die "unbound not installed" ;;
        dnsmasq) command -v dnsmasq >/dev/null || die "dnsmasq not installed" ;;
        dnsdist) command -v dnsdist >/dev/null || die "dnsdist not installed" ;;
        project) ;;
        *) [[ -x $BENCH_DIR/peers/$s/peer.sh ]] || die "unknown server $s (no peers/$s/peer.sh)"
           [[ -n ${PORT[$s]:-} ]] || PORT[$s]=$((5320 + ${#PORT[@]})) ;;
        esac
    done
    [[ $REFERENCE == 1 && " $SERVERS " != *" reference "* ]] && SERVERS="$SERVERS reference"
    [[ $FWDREF == 1 && " $SERVERS " != *" fwdref "* ]] && SERVERS="$SERVERS fwdref"

    mkdir -p "$OUT" "${RESULTS_DIR:-$BENCH_DIR/results}"
    : >"$RESULTS"
    build_tools || die "gcc failed to build ref/refdns.c or ref/waitdns.c"

    # data (cached in bench/data; only missing files are generated)
    all_sizes=$(printf '%s\n' $GEN_SIZES $LOAD_SIZES $([[ $TP_SIZE != 0 ]] && echo "$TP_SIZE") | sort -n -u | paste -sd,)
    gen_args=(--sizes "$all_sizes" --mixed-sizes "")
    [[ $TP_SIZE != 0 ]] && gen_args=(--sizes "$all_sizes" --mixed-sizes "$TP_SIZE")
    $PY "$BENCH_DIR/gen.py" --out "$DATA_DIR" "${gen_args[@]}" >&2 || die "gen.py failed"

    # meta
    $PY - "$RUN_ID" "$PIN" "$SERVER_CPU" "$CLIENT_CPU" "$UPSTREAM_CPU" \
        "-c $CLIENTS -q $OUTSTANDING -t $QTIMEOUT -l $DURATION $DNSPERF_EXTRA" "$LAT_QPS" "$LAT_SECS" "$TP_SIZE" "$REPEAT" >>"$RESULTS" <<'EOF'
import json, os, platform, subprocess, sys
run_id, pin, scpu, ccpu, ucpu, args, lq, ls, tp, rep = sys.argv[1:]
def ver(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except Exception as e:
        return "n/a"
model = ""
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip(); break
except OSError:
    pass
print(json.dumps({"kind": "meta", "run_id": run_id, "host": platform.node() + " " + platform.release(),
    "cpus": os.cpu_count(), "cpu_model": model, "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "pinning": ("server on CPU %s, dnsperf on CPU %s, upstream on CPU %s" % (scpu, ccpu, ucpu)) if pin == "1" else "none",
    "dnsperf_args": args, "lat_qps": lq, "lat_secs": ls, "tp_size": tp, "repeat": rep,
    "versions": {"dnsperf": ver(["sh", "-c", "dnsperf -h 2>&1 | grep -i '^version'"]),
                 "unbound": ver(["sh", "-c", "unbound -V | sed -n 1p"]),
                 "dnsmasq": ver(["dnsmasq", "--version"]), "dnsdist": ver(["dnsdist", "--version"]),
                 "nsd": ver(["nsd", "-v"])}}))
EOF
    log "run $RUN_ID: servers [$SERVERS], load sizes [$LOAD_SIZES], throughput size $TP_SIZE, out $OUT"

    # upstream
    if [[ $TP_SIZE != 0 ]]; then
        port_busy "$UPSTREAM_PORT" && die "upstream port $UPSTREAM_PORT already in use"
        "$BENCH_DIR/upstream.sh" "$OUT/upstream" >"$OUT/upstream.log" 2>&1 &
        UP_PID=$!
        bench_track "$UP_PID"
        wait_ready "$UPSTREAM_PORT" "$(sed -n 2p "$DATA_DIR/probe-$TP_SIZE.txt")" NOERROR "$(now)" "$UP_PID" 30 >/dev/null ||
            die "upstream did not start: $(tail -5 "$OUT/upstream.log")"
        log "upstream nsd up on $ADDR:$UPSTREAM_PORT (pid $UP_PID)"
    fi

    for s in $SERVERS; do
        measure_server "$s"
    done

    [[ -n ${UP_PID:-} ]] && stop_pid "$UP_PID"
    bench_cleanup

    $BENCHPY report "$RESULTS" --md "$OUT/results.md"
    cp "$OUT/results.md" "${RESULTS_DIR:-$BENCH_DIR/results}/$RUN_ID.md"
    log "results: $OUT/results.md (raw dnsperf output in $OUT/*/)"
}

# sourcing this file only defines the functions (see start_project); running it benchmarks
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
