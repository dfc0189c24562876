#!/bin/sh
# Meetings under load: 20 meetings × 5 participants (100 recording
# publishers, 720p H.264 + Opus from testdata/h264-2500k.h264 and
# opus.ogg, looped by cmd/reel-load), then every occurrence and file
# checked. One run; docs/BENCHMARKS.md takes the median of three.
#
#   docs/bench/meetings.sh OUT_DIR [MEETINGS] [SIZE]
#
# Needs the binaries in $REEL and $REEL_LOAD (go build -o ... ./cmd/reel,
# ./cmd/reel-load), ffprobe, ffmpeg, python3. KEEP=1 keeps the recordings
# (the script prints where); LOAD_ARGS adds reel-load flags. Writes OUT_DIR/load.json (reel-load's report),
# OUT_DIR/check.txt (the files) and OUT_DIR/uptime.txt.
set -eu
out=$1
meetings=${2:-20}
size=${3:-5}
: "${REEL:?set REEL to a reel binary}" "${REEL_LOAD:?set REEL_LOAD to a reel-load binary}"
mkdir -p "$out"
rec=$(mktemp -d /tmp/reel-meetings-XXXXXX)
trap 'kill "$gw" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$rec"' EXIT
uptime >"$out/uptime.txt"
"$REEL" serve --http-addr 127.0.0.1:47080 --webrtc-udp-addr 127.0.0.1:47189 \
	--rtsp-addr 127.0.0.1:47554 --rtsp-udp-rtp-addr 127.0.0.1:47000 --rtsp-udp-rtcp-addr 127.0.0.1:47001 \
	--hls-enabled=false --log-level warn --recordings-dir "$rec" --meetings-grace 2s \
	--limits-sessions-per-ip 0 --limits-request-rate 0 --limits-publishers 0 \
	--limits-viewers-per-stream 0 --limits-viewers 0 --limits-pending-per-ip 0 --limits-pending-publishers 0 \
	2>"$out/gateway.log" &
gw=$!
sleep 1
"$REEL_LOAD" -url http://127.0.0.1:47080 -rtsp rtsp://127.0.0.1:47554 -pid "$gw" \
	-streams $((meetings * size)) -meeting-size "$size" -sender-reports capture -viewers 0 -duration 20s ${LOAD_ARGS:-} \
	-json "$out/load.json" >/dev/null 2>"$out/load.log" ||
	echo "reel-load reported errors (refused or failed sessions: load.json)" >&2
uptime >>"$out/uptime.txt"
sleep 4 # the grace (2 s): every occurrence ends
kill -TERM "$gw"
wait "$gw" || true
python3 - "$rec" "$meetings" "$size" "$out/load.json" >"$out/check.txt" <<'EOF'
import hashlib, json, pathlib, subprocess, sys, statistics
rec, meetings, size = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
# Publishers that did not connect (refused by a limit, such as
# limits.max_input_lag) are left out of their meeting.
try:
    pubs = json.loads(pathlib.Path(sys.argv[4]).read_text())["publishers"]
    missing = pubs["wanted"] - pubs["connected"]
except (OSError, ValueError, KeyError):
    missing = 0
print(f"publishers that did not connect {missing}")
mans = sorted(rec.glob("*/*/manifest.json"))
bad, durs, short = [], [], []
for mf in mans:
    m = json.loads(mf.read_text())
    n = len(m["participants"])
    if m["state"] != "ended" or len(m["recordings"]) != n or n > size or (n < size and not missing):
        bad.append(f"{m['id']}: state {m['state']}, {len(m['participants'])} participants, {len(m['recordings'])} recordings")
    if not (mf.parent / "manifest.json.sha256").exists():
        bad.append(f"{m['id']}: no manifest.json.sha256")
    for r in m["recordings"]:
        f = mf.parent / r["file"]
        if r["state"] != "finished" or not f.exists():
            bad.append(f"{r['file']}: {r['state']}, exists {f.exists()}")
            continue
        if hashlib.sha256(f.read_bytes()).hexdigest() != r["sha256"]:
            bad.append(f"{r['file']}: sha256 differs from the manifest")
        p = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
                                       "-of", "json", str(f)], capture_output=True, text=True).stdout or "{}")
        kinds = sorted(s["codec_type"] for s in p.get("streams", []))
        d = float(p.get("format", {}).get("duration", 0))
        durs.append(d)
        # Recording minus presence: a file starts at the first keyframe
        # after the join, so a little under 0 when nothing was lost.
        pres = sum(s["leave_offset_ms"] - s["join_offset_ms"] for q in m["participants"] if q["name"] == r["participant"]
                   for s in q["sessions"] if s.get("leave_offset_ms") is not None) / 1000
        short.append(d - pres)
        if kinds != ["audio", "video"] or abs(d - r["duration_ms"] / 1000) > 0.5:
            bad.append(f"{r['file']}: streams {kinds}, ffprobe {d:.2f} s, manifest {r['duration_ms']} ms")
    # One participant's file of every meeting decoded whole.
    r = m["recordings"][0]
    # Frames to the null muxer with their timestamps as stored (ms), as
    # internal/mediacheck.AsStored says why.
    err = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(mf.parent / r["file"]),
                          "-fps_mode", "passthrough", "-enc_time_base:v", "1:1000", "-f", "null", "-"],
                         capture_output=True, text=True).stderr.strip()
    if err:
        bad.append(f"{r['file']}: ffmpeg decoding: {err.splitlines()[0]}")
print(f"occurrences {len(mans)} (want {meetings}), recordings {len(durs)} (want {meetings * size})")
if durs:
    print(f"durations s: min {min(durs):.2f} median {statistics.median(durs):.2f} max {max(durs):.2f}")
    print(f"recording minus presence s: min {min(short):.2f} median {statistics.median(short):.2f} max {max(short):.2f}")
print(f"problems {len(bad)}")
for b in bad[:20]:
    print("  " + b)
EOF
cat "$out/check.txt"
[ -z "${KEEP:-}" ] || echo "recordings kept in $rec"
