#!/usr/bin/env bash
# Starts bin/vigil (monolithic, loopback, a fresh data directory) and drives it
# with bin/loadgen: prints samples per server CPU-second and RSS per series.
# VIGIL_BIN names another binary (to compare two builds side by side) and
# VIGIL_FLAGS adds flags, for example -ingester.tsdb.wal-sync=always.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
log="$dir/vigil.log"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
# shellcheck disable=SC2086 # VIGIL_FLAGS is a list of flags
"${VIGIL_BIN:-./bin/vigil}" -data-dir="$dir/data" -log.level=warn ${VIGIL_FLAGS:-} \
	-server.http-listen-address=127.0.0.1 -server.http-listen-port=0 \
	-server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port=0 \
	-memberlist.bind-addr=127.0.0.1 -memberlist.bind-port=0 -admin.listen-port=0 -controlplane.ring.instance-addr=127.0.0.1 \
	-ingester.ring.instance-addr=127.0.0.1 >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	url=$(grep -o 'remote write: http://[^ ]*' "$log" | head -n1 | cut -d' ' -f3) || true
	[ -n "$url" ] && break
	sleep 0.1
done
[ -n "$url" ] || { echo "vigil did not start:"; cat "$log"; exit 1; }
./bin/loadgen -url "$url" -pid "$pid" "$@"
