#!/usr/bin/env bash
# The mixed workload's ceiling for a forwarder: bench/ref/fwdref answers NXDOMAIN to every
# query except the generator's never-seen names, which it forwards to the upstream (on the
# client's core, like every server's misses) and relays back; no lookup, cache or log
# (recvmmsg/sendmmsg, one thread). The blocklist is ignored.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cmd=$1; shift
case $cmd in
prepare)
    bl=$1 rundir=$2 port=$3 up=$4
    mkdir -p "$rundir"; rundir=$(cd "$rundir" && pwd)
    tools=${TOOLS_DIR:-$here/ref}; mkdir -p "$tools"
    src=$here/ref/fwdref.c bin=$tools/fwdref
    if [[ ! -x $bin || $src -nt $bin ]]; then gcc -O2 -Wall -o "$bin" "$src"; fi
    echo "$port $up" >"$rundir/port"
    ;;
exec)
    rundir=$1
    read -r port up <"$rundir/port"
    exec "${TOOLS_DIR:-$here/ref}/fwdref" 127.0.0.1 "$port" 127.0.0.1 "$up"
    ;;
*) echo "usage: $0 prepare BLOCKLIST RUNDIR PORT UPSTREAM_PORT | exec RUNDIR" >&2; exit 2 ;;
esac
