#!/usr/bin/env bash
# Installs what the interop suite (go test -run "Interop|BrowserUI" ./e2e) needs:
# Debian's Chromium, GStreamer with webrtcbin and Python bindings, ffmpeg,
# MKVToolNix, Node.js, and the pinned npm packages of package-lock.json;
# also iproute2 (ip, tc) for the RTSP multicast test (egress/rtsp) and the
# simulcast bandwidth tests (e2e/bandwidth_test.go), and Redis for the
# cluster tests (go test -run Cluster ./e2e; SeaweedFS, their S3 server,
# is built by build_weed.sh).
# Idempotent: a second run installs nothing and takes a few seconds.
# Never downloads a browser of its own (playwright-core is driver only).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

debs=(
	chromium                      # libwebrtc, driven by playwright-core
	ffmpeg                        # ffmpeg/ffprobe: RTSP, HLS and file readers
	mkvtoolnix                    # mkvinfo, mkvmerge
	fonts-dejavu-core             # the names on a composite meeting export's tiles
	iproute2                      # ip, tc: network namespaces of the multicast and bandwidth tests
	gstreamer1.0-tools
	gstreamer1.0-plugins-base     # videotestsrc, audiotestsrc, opusenc
	gstreamer1.0-plugins-good     # rtph264pay, rtpopuspay
	gstreamer1.0-plugins-bad      # webrtcbin
	gstreamer1.0-plugins-ugly     # x264enc
	gstreamer1.0-nice             # libnice ICE for webrtcbin
	python3-gi                    # for Debian's /usr/bin/python3
	gir1.2-gstreamer-1.0
	gir1.2-gst-plugins-base-1.0
	gir1.2-gst-plugins-bad-1.0    # GstWebRTC, GstSdp
	nodejs
	npm
	redis-server                  # the cluster tests' registry, started per test on a loopback port
)

missing=()
for p in "${debs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere (an image's own Node): accept those.
if command -v node >/dev/null && command -v npm >/dev/null; then
	filtered=()
	for p in "${missing[@]}"; do
		[[ $p == nodejs || $p == npm ]] || filtered+=("$p")
	done
	missing=("${filtered[@]}")
fi

if ((${#missing[@]})); then
	echo "interop: installing ${missing[*]}"
	sudo=""
	[[ $(id -u) -eq 0 ]] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -q
	$sudo apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}"
else
	echo "interop: Debian packages present"
fi

# The pinned npm packages, exactly as package-lock.json says. npm ci wipes
# node_modules, so skip it when the installed tree already matches.
cd "$here"
if node -e '
	// Every non-optional package of the lock is installed at its version.
	const fs = require("fs");
	const want = require("./package-lock.json").packages;
	const have = fs.existsSync("node_modules/.package-lock.json")
		? require("./node_modules/.package-lock.json").packages : {};
	for (const [k, v] of Object.entries(want))
		if (k && !v.optional && (!have[k] || have[k].version !== v.version)) process.exit(1);
' 2>/dev/null; then
	echo "interop: npm packages present"
else
	echo "interop: npm ci"
	npm ci --no-audit --no-fund --loglevel=error
fi

# Fail here, not in the middle of the suite, if a piece does not work.
/usr/bin/chromium --version 2>/dev/null
/usr/bin/python3 "$here/gst_whip_publish.py" --check
node -e 'require.resolve("playwright-core"); require.resolve("esbuild"); console.log("interop: node packages resolve")'
