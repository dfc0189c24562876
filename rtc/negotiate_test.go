package rtc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/reel-gateway/reel/live"
)

// obsOffer is shaped like the offer OBS 30 (libdatachannel) sends: H.264
// with one profile, Opus, sendonly, no trickle, candidates inline.
func obsOffer(profile, pm string) string {
	return strings.ReplaceAll(`v=0
o=rtc 3405376476 0 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=msid-semantic:WMS *
a=ice-options:ice2,trickle
a=fingerprint:sha-256 3A:1B:4C:22:0B:6F:F4:52:0E:3D:5A:2C:6B:11:9E:44:7D:AC:09:12:33:98:E1:6A:2F:0D:B5:C3:77:41:68:90
m=audio 53711 UDP/TLS/RTP/SAVPF 111
c=IN IP4 127.0.0.1
a=mid:0
a=sendonly
a=ssrc:1111 cname:obs
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1
a=setup:actpass
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=candidate:1 1 UDP 2122317823 127.0.0.1 53711 typ host
a=end-of-candidates
m=video 53711 UDP/TLS/RTP/SAVPF 96
c=IN IP4 127.0.0.1
a=mid:1
a=sendonly
a=ssrc:2222 cname:obs
a=rtcp-mux
a=rtpmap:96 H264/90000
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=fmtp:96 profile-level-id=PROFILE;packetization-mode=PM;level-asymmetry-allowed=1
a=setup:actpass
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
`, "PROFILE", profile)
}

func TestNegotiateEveryH264VariantOBSAndFFmpegSend(t *testing.T) {
	for _, profile := range []string{"42e01f", "42001f", "4d001f", "4d0032", "640032", "64001f", "640c1f"} {
		for _, pm := range []string{"0", "1"} {
			t.Run(profile+"/pm"+pm, func(t *testing.T) {
				offer := strings.ReplaceAll(strings.ReplaceAll(obsOffer(profile, pm), "PM", pm), "\n", "\r\n")
				sd, err := parseOffer([]byte(offer))
				if err != nil {
					t.Fatal(err)
				}
				tracks, _, err := negotiate(sd, DefaultPreferences(), true)
				if err != nil {
					t.Fatal(err)
				}
				if len(tracks) != 2 || tracks[1].Codec != live.H264 || !strings.Contains(tracks[1].Fmtp, profile) || tracks[1].PayloadType != 96 {
					t.Fatalf("tracks %+v %+v", tracks[0], tracks[1])
				}
			})
		}
	}
}

func TestPickFormatPrefersPacketizationMode1(t *testing.T) {
	offered := []offeredFormat{
		{pt: 100, codec: live.H264, fmtp: "profile-level-id=42e01f;packetization-mode=0"},
		{pt: 102, codec: live.H264, fmtp: "profile-level-id=42e01f;packetization-mode=1"},
		{pt: 96, codec: live.VP8},
	}
	for _, serverOrder := range []bool{false, true} {
		f, _ := pickFormat(offered, []live.Codec{live.H264, live.VP8}, serverOrder)
		if f.pt != 102 {
			t.Fatalf("server order %v: picked %d", serverOrder, f.pt)
		}
	}
	if f, _ := pickFormat(offered, []live.Codec{live.VP8, live.H264}, true); f.pt != 96 {
		t.Fatalf("with VP8 preferred by the server picked %d", f.pt)
	}
	if _, ok := pickFormat([]offeredFormat{{pt: 97, codec: live.H264, fmtp: "packetization-mode=2"}}, []live.Codec{live.H264}, false); ok {
		t.Fatal("accepted interleaved mode")
	}
}

// By default the offer's order picks among the allowed codecs (RFC 3264
// §6.1); with ServerOrder the configured order does. A codec the
// configuration does not list is never picked, wherever it is offered.
func TestPickFormatOrder(t *testing.T) {
	vp8First := []offeredFormat{
		{pt: 96, codec: live.VP8},
		{pt: 98, codec: live.VP9, fmtp: "profile-id=1"}, // not acceptable: profile 1
		{pt: 102, codec: live.H264, fmtp: "profile-level-id=42e01f;packetization-mode=1"},
		{pt: 45, codec: live.AV1},
	}
	for _, c := range []struct {
		name        string
		offered     []offeredFormat
		allowed     []live.Codec
		serverOrder bool
		want        uint8
	}{
		{"offer order: VP8 first", vp8First, live.DefaultVideoPreference, false, 96},
		{"server order: H.264 first", vp8First, live.DefaultVideoPreference, true, 102},
		{"offer order, VP8 not allowed", vp8First, []live.Codec{live.AV1, live.H264}, false, 102},
		{"server order, AV1 first", vp8First, []live.Codec{live.AV1, live.H264}, true, 45},
		{"offer order skips an unacceptable variant", []offeredFormat{
			{pt: 98, codec: live.VP9, fmtp: "profile-id=1"}, {pt: 45, codec: live.AV1}}, live.DefaultVideoPreference, false, 45},
	} {
		f, ok := pickFormat(c.offered, c.allowed, c.serverOrder)
		if !ok || f.pt != c.want {
			t.Errorf("%s: picked %d (%v), want %d", c.name, f.pt, ok, c.want)
		}
	}
	if _, ok := pickFormat(vp8First, []live.Codec{live.H265}, false); ok {
		t.Error("picked a codec the configuration does not allow")
	}
}

func TestParsePrefer(t *testing.T) {
	for in, want := range map[string]bool{"": false, "offer": false, "Server": true} {
		if got, err := ParsePrefer(in); err != nil || got != want {
			t.Errorf("ParsePrefer(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParsePrefer("client"); err == nil {
		t.Error("ParsePrefer took client")
	}
}

func TestParseSDPFrag(t *testing.T) {
	frag := "a=ice-options:trickle ice2\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
		"a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n" +
		"a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n" +
		"a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n" +
		"a=end-of-candidates\r\n"
	f, err := parseSDPFrag([]byte(frag))
	if err != nil {
		t.Fatal(err)
	}
	if f.ufrag != "EsAw" || f.pwd != "P2uYro0UCOQ4zxjKXaWCBui1" || len(f.candidates) != 2 || *f.candidates[0].SDPMid != "0" {
		t.Fatalf("%+v", f)
	}
	if !strings.HasPrefix(f.candidates[1].Candidate, "candidate:3471623853") {
		t.Fatalf("candidate %q", f.candidates[1].Candidate)
	}
	for _, bad := range []string{"garbage", strings.Repeat("a=x\r\n", 5000)} {
		if _, err := parseSDPFrag([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad[:min(len(bad), 20)])
		}
	}
}

func TestETagMatching(t *testing.T) {
	for _, c := range []struct {
		ifMatch string
		ok      bool
	}{{`"abc"`, true}, {`*`, true}, {`"x", "abc"`, true}, {`W/"abc"`, false}, {`"abd"`, false}} {
		if got := etagMatches(c.ifMatch, `"abc"`); got != c.ok {
			t.Errorf("If-Match %s: %v", c.ifMatch, got)
		}
	}
}

func TestKeyframeDetection(t *testing.T) {
	cases := []struct {
		codec live.Codec
		p     []byte
		want  bool
	}{
		{live.H264, []byte{0x65, 0x88}, true},                               // IDR
		{live.H264, []byte{0x67, 0x64}, true},                               // SPS
		{live.H264, []byte{0x41, 0x9a}, false},                              // non-IDR slice
		{live.H264, []byte{0x7c, 0x85, 0x88}, true},                         // FU-A start of IDR
		{live.H264, []byte{0x7c, 0x05, 0x88}, false},                        // FU-A middle
		{live.H264, []byte{0x78, 0, 2, 0x67, 0x64, 0, 2, 0x68, 0xee}, true}, // STAP-A with SPS
		{live.VP8, []byte{0x10, 0x00, 0x9d}, true},                          // S=1 PID=0, P=0
		{live.VP8, []byte{0x10, 0x01, 0x9d}, false},                         // interframe
		{live.VP8, []byte{0x90, 0x80, 0x81, 0x23, 0x00}, true},              // X, I with 15-bit picture id
		{live.VP8, []byte{0x00, 0x00}, false},                               // not a partition start
		{live.VP9, []byte{0x08 | 0x80}, true},                               // B, P=0
		{live.VP9, []byte{0x08 | 0x40}, false},                              // B, P=1
		{live.AV1, []byte{0x08}, true}, {live.AV1, []byte{0x00}, false}, {live.VP8, nil, false},
		{live.H265, []byte{0x28, 0x01, 0xaf}, true},                                        // IDR_N_LP (20)
		{live.H265, []byte{0x2a, 0x01, 0xaf}, true},                                        // CRA (21)
		{live.H265, []byte{0x40, 0x01, 0x0c}, true},                                        // VPS
		{live.H265, []byte{0x02, 0x01, 0xd0}, false},                                       // TRAIL_R
		{live.H265, []byte{0x62, 0x01, 0x93, 0xaf}, true},                                  // FU start of IDR_W_RADL (19)
		{live.H265, []byte{0x62, 0x01, 0x13, 0xaf}, false},                                 // FU middle of an IDR
		{live.H265, []byte{0x62, 0x01, 0x81, 0xaf}, false},                                 // FU start of TRAIL_R
		{live.H265, []byte{0x60, 0x01, 0, 3, 0x40, 0x01, 0x0c, 0, 3, 0x42, 0x01, 1}, true}, // AP with VPS
		{live.H265, []byte{0x60, 0x01, 0, 3, 0x4e, 0x01, 0x05}, false},                     // AP with an SEI only
		{live.H265, []byte{0x60, 0x01, 0, 9, 0x40}, false},                                 // AP, truncated
	}
	for i, c := range cases {
		if got := live.IsKeyframeStart(c.codec, c.p); got != c.want {
			t.Errorf("case %d (%s % x): %v", i, c.codec, c.p, got)
		}
	}
	_ = fmt.Sprint()
}

// GStreamer's webrtcbin offers max-bundle with the second section
// bundle-only (port 0); that section is bundled, not rejected.
func TestBundleOnlySectionIsNotRejected(t *testing.T) {
	offer := strings.ReplaceAll(strings.ReplaceAll(obsOffer("640032", "1"), "PM", "1"), "\n", "\r\n")
	offer = strings.Replace(offer, "m=video 53711", "m=video 0", 1)
	offer = strings.Replace(offer, "a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n", 1)
	sd, err := parseOffer([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	if !unbundleOnly(sd) {
		t.Fatal("bundle-only section not recognised")
	}
	tracks, _, err := negotiate(sd, DefaultPreferences(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(tracks) != 2 || tracks[1].Codec != live.H264 {
		t.Fatalf("tracks %v", tracks)
	}
}

// The ICE restart answer lists component 1 only: with rtcp-mux nothing
// uses component 2, and whip-whep's restart() accepts one line per candidate.
func TestRestartFragmentHasComponentOneOnly(t *testing.T) {
	local := "v=0\r\na=ice-ufrag:U\r\na=ice-pwd:P\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=candidate:1 2 udp 2130706431 127.0.0.1 5000 typ host\r\n"
	frag := string(buildSDPFrag(local))
	if strings.Contains(frag, "candidate:1 2 ") || !strings.Contains(frag, "candidate:1 1 ") {
		t.Fatalf("fragment:\n%s", frag)
	}
}

// An OBS HEVC encoder offers H.265 alone: Reel takes it. Offered before
// H.264 it wins by the offer's order, and H.264 wins by the server's
// (where H.265 comes last); with decoding order numbers it is refused.
func TestNegotiateH265(t *testing.T) {
	h265 := func(fmtp string) string {
		o := strings.ReplaceAll(obsOffer("640032", "1"), "PM", "1")
		o = strings.Replace(o, "a=rtpmap:96 H264/90000", "a=rtpmap:96 H265/90000", 1)
		return strings.Replace(o, "a=fmtp:96 profile-level-id=640032;packetization-mode=1;level-asymmetry-allowed=1", "a=fmtp:96 "+fmtp, 1)
	}
	sd, err := parseOffer([]byte(strings.ReplaceAll(h265("level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"), "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	tracks, _, err := negotiate(sd, DefaultPreferences(), true)
	if err != nil {
		t.Fatal(err)
	}
	if tracks[1].Codec != live.H265 || !strings.Contains(tracks[1].Fmtp, "profile-id=1") {
		t.Fatalf("video track %+v", tracks[1])
	}

	both := strings.Replace(obsOffer("640032", "1"), "m=video 53711 UDP/TLS/RTP/SAVPF 96", "m=video 53711 UDP/TLS/RTP/SAVPF 98 96", 1)
	both = strings.Replace(strings.ReplaceAll(both, "PM", "1"), "a=rtpmap:96 H264/90000", "a=rtpmap:98 H265/90000\na=rtpmap:96 H264/90000", 1)
	if sd, err = parseOffer([]byte(strings.ReplaceAll(both, "\n", "\r\n"))); err != nil {
		t.Fatal(err)
	}
	if tracks, _, err = negotiate(sd, DefaultPreferences(), true); err != nil || tracks[1].Codec != live.H265 {
		t.Fatalf("H.265 and H.264 offered, in that order: %v %v", tracks, err)
	}
	server := DefaultPreferences()
	server.ServerOrder = true
	if tracks, _, err = negotiate(sd, server, true); err != nil || tracks[1].Codec != live.H264 {
		t.Fatalf("H.265 and H.264 offered, server order: %v %v", tracks, err)
	}

	if sd, err = parseOffer([]byte(strings.ReplaceAll(h265("profile-id=1;sprop-max-don-diff=2"), "\n", "\r\n"))); err != nil {
		t.Fatal(err)
	}
	if _, _, err = negotiate(sd, DefaultPreferences(), true); err == nil {
		t.Error("an H.265 offer with decoding order numbers was accepted")
	}
}
