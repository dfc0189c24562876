#!/usr/bin/env bash
# Builds SeaweedFS's weed (the cluster tests' S3 server) once, from the Go
# module proxy at a pinned version, into a cache outside the clone keyed by
# that version; later runs find it and take no time. The first build takes
# about 12 minutes on 2 cores (it fetches ~220 modules).
# Prints the binary's path on the last line.
set -euo pipefail

version=v0.0.0-20261109003541-7506e5f91cd6 # github.com/seaweedfs/seaweedfs (SeaweedFS 4.53)
out="${REEL_CI_CACHE:-$HOME/.cache/reel-ci}/weed-$version"
if [[ -x "$out/weed" ]] && "$out/weed" version >/dev/null 2>&1; then
	echo "cluster: SeaweedFS present"
	echo "$out/weed"
	exit 0
fi
echo "cluster: building SeaweedFS weed $version (once; cached in $out)"
start=$(date +%s)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Downloaded outside any module, so no go.mod or go.sum is touched.
src="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$version" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
# Its go.mod has replace directives, so `go install pkg@version` refuses
# it: build inside a writable copy of the module, where they apply.
cp -r "$src" "$work/seaweedfs"
chmod -R u+w "$work/seaweedfs"
mkdir -p "$out"
(cd "$work/seaweedfs" && go build -o "$out/weed.tmp" ./weed)
mv "$out/weed.tmp" "$out/weed"
echo "cluster: SeaweedFS built in $(($(date +%s) - start)) s"
echo "$out/weed"
