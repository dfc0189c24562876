#!/bin/sh
# download.zip of a big meeting: throughput and the gateway's RSS while it
# streams, three downloads, with what reading and hashing the same files
# costs beside them.
#
#   docs/bench/zip.sh RECORDINGS_DIR OCCURRENCE_ID
#
# RECORDINGS_DIR holds {meeting}/{occurrence}/ with manifest.json and the
# files (docs/BENCHMARKS.md says how the 2 GB one was made). Needs $REEL,
# curl, python3.
set -eu
rec=$1
id=$2
: "${REEL:?set REEL to a reel binary}"
dir=$(dirname "$(ls "$rec"/*/"$id"/manifest.json)")
uptime
"$REEL" serve --http-addr 127.0.0.1:47380 --webrtc-udp-addr 127.0.0.1:47389 --rtsp-addr 127.0.0.1:47354 \
	--rtsp-udp-rtp-addr 127.0.0.1:47300 --rtsp-udp-rtcp-addr 127.0.0.1:47301 --hls-enabled=false \
	--log-level warn --recordings-dir "$rec" 2>/dev/null &
gw=$!
trap 'kill "$gw" 2>/dev/null || true' EXIT
sleep 1
rss() { awk '/VmRSS/ {print $2}' /proc/"$gw"/status; }
echo "gateway RSS before: $(rss) kB"
for run in 1 2 3; do
	peak=0
	curl -s -o /dev/null -w "run $run: %{size_download} bytes in %{time_total} s, %{speed_download} B/s\n" \
		"http://127.0.0.1:47380/api/v1/meetings/$id/download.zip" &
	c=$!
	while kill -0 "$c" 2>/dev/null; do
		r=$(rss)
		[ "$r" -gt "$peak" ] && peak=$r
		sleep 0.1
	done
	wait "$c"
	echo "run $run: gateway peak RSS while streaming $peak kB"
done
echo "gateway RSS after: $(rss) kB"
# The same bytes read (cat) and hashed (sha256sum, as the zip does while
# it writes), for scale.
start=$(date +%s.%N); cat "$dir"/*.mkv >/dev/null; end=$(date +%s.%N)
echo "cat: $(du -cb "$dir"/*.mkv | tail -1 | cut -f1) bytes in $(echo "$end - $start" | bc) s"
start=$(date +%s.%N); sha256sum "$dir"/*.mkv >/dev/null; end=$(date +%s.%N)
echo "sha256sum: $(echo "$end - $start" | bc) s"
