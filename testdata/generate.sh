#!/usr/bin/env bash
# Regenerates the media fixtures used by internal/testmedia and the end-to-end
# tests. Every file is synthetic (ffmpeg lavfi sources), so the output is
# reproducible enough and carries no licensing baggage.
#
# Usage: testdata/generate.sh            (writes next to this script)
#
# Needs ffmpeg built with libvpx, libx264, libx265, libopus and, for av1.ivf, an AV1
# encoder (libaom-av1 or libsvtav1). Each fixture must stay below 400 KB,
# except h264-2500k.h264 (the load tool's 2.5 Mbit/s stream) and
# h264-720p-1200k.h264 (the meetings benchmark's), below 2 MB.
set -euo pipefail

cd "$(dirname "$0")"

FF=(ffmpeg -hide_banner -loglevel error -y)
SIZE=640x360
FPS=30

video_src() { # $1 = seconds
	echo "testsrc2=size=${SIZE}:rate=${FPS}:duration=$1"
}

# VP8: realtime, no alt-ref / lag so every IVF frame is a shown frame.
"${FF[@]}" -f lavfi -i "$(video_src 6)" -pix_fmt yuv420p \
	-c:v libvpx -deadline realtime -cpu-used 8 -auto-alt-ref 0 -lag-in-frames 0 \
	-b:v 300k -maxrate 300k -bufsize 300k -g 30 -keyint_min 30 \
	-f ivf vp8.ivf

# H.264 High profile as OBS sends it: no B-frames, 4 slices per picture,
# SPS/PPS repeated in front of every IDR (repeat-headers=1). threads=4 pins
# the slice count: with zerolatency's sliced threads x264 otherwise uses one
# slice per thread and ignores slices=4 on a 2-core machine.
"${FF[@]}" -f lavfi -i "$(video_src 6)" -pix_fmt yuv420p \
	-c:v libx264 -profile:v high -preset veryfast -tune zerolatency -bf 0 \
	-b:v 400k -maxrate 400k -bufsize 400k \
	-x264-params slices=4:threads=4:keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 \
	-f h264 h264.h264

# H.264 High at 2.5 Mbit/s, 720p, for cmd/reel-load: the bitrate a real OBS
# stream has. Noise keeps x264 from compressing the test pattern below the
# target; keyframes every 2 s, as OBS is usually set up. 5 s, about 1.6 MB.
"${FF[@]}" -f lavfi -i "testsrc2=size=1280x720:rate=${FPS}:duration=5" -vf "noise=alls=12:allf=t" \
	-pix_fmt yuv420p -c:v libx264 -profile:v high -preset veryfast -tune zerolatency -bf 0 \
	-b:v 2500k -minrate 2500k -maxrate 2500k -bufsize 2500k \
	-x264-params slices=4:threads=4:keyint=60:min-keyint=60:scenecut=0:repeat-headers=1 \
	-f h264 h264-2500k.h264

# The same picture at 640x360 (600 kbit/s) and 320x180 (200 kbit/s), same
# frames and GOP: cmd/reel-load -simulcast's lower layers.
for s in 640x360:600k 320x180:200k; do
	size=${s%%:*} rate=${s##*:} w=${size%%x*}
	"${FF[@]}" -f lavfi -i "testsrc2=size=1280x720:rate=${FPS}:duration=5" -vf "noise=alls=12:allf=t,scale=${size}" \
		-pix_fmt yuv420p -c:v libx264 -profile:v high -preset veryfast -tune zerolatency -bf 0 \
		-b:v "$rate" -minrate "$rate" -maxrate "$rate" -bufsize "$rate" \
		-x264-params slices=1:threads=1:keyint=60:min-keyint=60:scenecut=0:repeat-headers=1 \
		-f h264 "h264-2500k-${w}.h264"
done
# H.264 at 1.2 Mbit/s, 720p, for the meetings benchmark (docs/BENCHMARKS.md):
# what a browser sends a video call at 720p (libwebrtc's target for
# 1280x720 at 30 fps). Constrained Baseline, one slice, keyframes every
# 2 s. 5 s, about 750 KB.
"${FF[@]}" -f lavfi -i "testsrc2=size=1280x720:rate=${FPS}:duration=5" -vf "noise=alls=12:allf=t" \
	-pix_fmt yuv420p -c:v libx264 -profile:v baseline -preset veryfast -tune zerolatency -bf 0 \
	-b:v 1200k -minrate 1200k -maxrate 1200k -bufsize 1200k \
	-x264-params keyint=60:min-keyint=60:scenecut=0:repeat-headers=1 \
	-f h264 h264-720p-1200k.h264

# H.265 Main as an HEVC encoder in OBS sends it: no B-frames, VPS/SPS/PPS
# in front of every IRAP (repeat-headers), one-second GOP, 6 s.
"${FF[@]}" -f lavfi -i "$(video_src 6)" -pix_fmt yuv420p \
	-c:v libx265 -profile:v main -preset veryfast -tune zerolatency \
	-b:v 400k -maxrate 400k -bufsize 400k \
	-x265-params log-level=error:bframes=0:keyint=30:min-keyint=30:scenecut=0:open-gop=0:repeat-headers=1 \
	-f hevc h265.h265

# H.264 Constrained Baseline, single slice (threads=1, see above), 3 s.
"${FF[@]}" -f lavfi -i "$(video_src 3)" -pix_fmt yuv420p \
	-c:v libx264 -profile:v baseline -preset veryfast -tune zerolatency -bf 0 \
	-b:v 400k -maxrate 400k -bufsize 400k \
	-x264-params slices=1:threads=1:keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 \
	-f h264 h264-baseline.h264

# H.264 with a keyframe every 5 s, 320x180, 8 s: a publisher that does
# not answer keyframe requests, so the recorder cuts clusters without one
# (recorder/cues.go).
"${FF[@]}" -f lavfi -i "testsrc2=size=${SIZE}:rate=${FPS}:duration=8" -vf scale=320x180 -pix_fmt yuv420p \
	-c:v libx264 -profile:v high -preset veryfast -tune zerolatency -bf 0 \
	-b:v 100k -maxrate 100k -bufsize 100k \
	-x264-params slices=1:threads=1:keyint=150:min-keyint=150:scenecut=0:repeat-headers=1 \
	-f h264 h264-gop5.h264

# Simulcast layers: the picture of h264.h264 and vp8.ivf at half and a
# quarter of its size (320x180, 160x90), same frames, same GOP (30), same
# 6 s, so a publisher sending all three keeps its layers' keyframes
# aligned, as one encoder feeding several layers does. Single slice.
for s in 320x180:150k 160x90:60k; do
	size=${s%%:*} rate=${s##*:} w=${size%%x*}
	"${FF[@]}" -f lavfi -i "testsrc2=size=${SIZE}:rate=${FPS}:duration=6" -vf "scale=${size}" -pix_fmt yuv420p \
		-c:v libx264 -profile:v high -preset veryfast -tune zerolatency -bf 0 \
		-b:v "$rate" -maxrate "$rate" -bufsize "$rate" \
		-x264-params slices=1:threads=1:keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 \
		-f h264 "h264-${w}.h264"
	"${FF[@]}" -f lavfi -i "testsrc2=size=${SIZE}:rate=${FPS}:duration=6" -vf "scale=${size}" -pix_fmt yuv420p \
		-c:v libvpx -deadline realtime -cpu-used 8 -auto-alt-ref 0 -lag-in-frames 0 \
		-b:v "$rate" -maxrate "$rate" -bufsize "$rate" -g 30 -keyint_min 30 \
		-f ivf "vp8-${w}.ivf"
done

# Opus: 440 Hz left, 660 Hz right, 20 ms frames. -page_duration 20000 puts
# exactly one Opus packet on each Ogg page, which is what pion's oggreader
# (page-oriented, no packet split) needs.
"${FF[@]}" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=6" \
	-f lavfi -i "sine=frequency=660:sample_rate=48000:duration=6" \
	-filter_complex "[0:a][1:a]amerge=inputs=2[a]" -map "[a]" \
	-c:a libopus -b:a 64k -frame_duration 20 -application audio \
	-page_duration 20000 -f ogg opus.ogg

# Flash and beep, for lip-sync tests: 10 s of black with a white picture
# (3 frames) and a 1 kHz beep (100 ms) at the same instants, 1 s, 3 s, 5 s,
# 7 s and 9 s; looped, they keep a 2 s period. H.264 as OBS sends it (High,
# no B-frames, parameter sets before every IDR, 1 s GOP); Opus one packet
# per Ogg page, as opus.ogg, 312 samples (the encoder's pre-skip) short of
# 10 s, so that it is exactly 500 packets of 20 ms and loops with the
# video.
"${FF[@]}" -f lavfi -i "color=c=black:size=320x180:rate=${FPS}:duration=10" \
	-vf "drawbox=c=white:t=fill:enable='lt(mod(t+1\,2)\,0.09)'" -pix_fmt yuv420p \
	-c:v libx264 -profile:v high -preset veryfast -tune zerolatency -bf 0 -b:v 150k \
	-x264-params keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 \
	-f h264 flashbeep.h264
"${FF[@]}" -f lavfi -i "aevalsrc='if(lt(mod(t+1\,2)\,0.1)\,0.8*sin(2*PI*1000*t)\,0)':s=48000:d=9.9935" \
	-ac 2 -c:a libopus -b:a 64k -frame_duration 20 -application audio \
	-page_duration 20000 -f ogg flashbeep.ogg

# Meeting participants, for the meeting export tests: each a distinct
# solid colour with a frame counter (320x180, 8 s, keyframe every second)
# and a distinct tone (Opus, one packet per Ogg page, exactly 8 s less the
# pre-skip, so that it loops with the video). Red and blue are H.264 (as
# OBS sends it), green is VP8 (as a browser sends it).
meet_video() { # $1 colour
	echo "color=c=$1:size=320x180:rate=${FPS}:duration=8,drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:text=%{n}:x=8:y=8:fontsize=24:fontcolor=white"
}
for colour in red blue; do
	"${FF[@]}" -f lavfi -i "$(meet_video $colour)" -pix_fmt yuv420p \
		-c:v libx264 -profile:v high -preset veryfast -tune zerolatency -bf 0 -b:v 100k \
		-x264-params keyint=30:min-keyint=30:scenecut=0:repeat-headers=1 \
		-f h264 meet-$colour.h264
done
"${FF[@]}" -f lavfi -i "$(meet_video green)" -pix_fmt yuv420p \
	-c:v libvpx -deadline realtime -cpu-used 8 -auto-alt-ref 0 -lag-in-frames 0 \
	-b:v 100k -g 30 -keyint_min 30 -f ivf meet-green.ivf
for hz in 400 1000 2500; do
	"${FF[@]}" -f lavfi -i "sine=frequency=$hz:sample_rate=48000:duration=7.9935" -ac 2 \
		-c:a libopus -b:a 32k -frame_duration 20 -application audio \
		-page_duration 20000 -f ogg meet-$hz.ogg
done

# VP9 profile 0: realtime, no alt-ref, keyframe every 30 frames.
"${FF[@]}" -f lavfi -i "$(video_src 3)" -pix_fmt yuv420p \
	-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 \
	-auto-alt-ref 0 -lag-in-frames 0 -error-resilient 1 \
	-b:v 300k -maxrate 300k -bufsize 300k -g 30 -keyint_min 30 \
	-f ivf vp9.ivf

# AV1: prefer libaom-av1 in realtime mode, fall back to SVT-AV1.
encoders="$(ffmpeg -hide_banner -encoders 2>/dev/null)"
if grep -q libaom-av1 <<<"$encoders"; then
	"${FF[@]}" -f lavfi -i "$(video_src 3)" -pix_fmt yuv420p \
		-c:v libaom-av1 -usage realtime -cpu-used 8 -lag-in-frames 0 \
		-b:v 300k -maxrate 300k -bufsize 300k -g 30 -keyint_min 30 \
		-f ivf av1.ivf
elif grep -q libsvtav1 <<<"$encoders"; then
	"${FF[@]}" -f lavfi -i "$(video_src 3)" -pix_fmt yuv420p \
		-c:v libsvtav1 -preset 12 -b:v 300k -g 30 \
		-svtav1-params pred-struct=1:lookahead=0 \
		-f ivf av1.ivf
else
	echo "no AV1 encoder in this ffmpeg: av1.ivf not regenerated" >&2
fi

ls -l meet-*.h264 meet-green.ivf meet-*.ogg flashbeep.h264 flashbeep.ogg vp8.ivf vp8-320.ivf vp8-160.ivf h264.h264 h264-320.h264 h264-160.h264 h264-2500k.h264 h264-2500k-640.h264 h264-2500k-320.h264 h264-720p-1200k.h264 h264-baseline.h264 h264-gop5.h264 opus.ogg vp9.ivf av1.ivf 2>/dev/null
