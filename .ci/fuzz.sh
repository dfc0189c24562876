#!/usr/bin/env bash
# CI: a short run of every fuzz target, one after another (each uses the
# machine's cores). FUZZTIME overrides the time per target.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-20s}
run() { echo "== fuzz $2 ($1)"; go test -run='^$' -fuzz="^$2\$" -fuzztime="$t" "$1"; }
run ./ingest FuzzOffer
run ./ingest FuzzOfferAnswer
run ./ingest FuzzNegotiateViewer
run ./ingest FuzzSDPFrag
run ./ingest FuzzIsKeyframeStart
run ./ingest FuzzH264Params
run ./recorder FuzzDepacketize
run ./recorder FuzzRecorder
