package rtc

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/live"
)

// chromeSimulcastOffer is shaped like the offer of Chromium publishing
// with sendEncodings [{rid:q}, {rid:h}, {rid:f}]: no a=ssrc for the
// layers, the mid and rid header extensions, a=rid and a=simulcast.
const chromeSimulcastOffer = `v=0
o=- 4215775240449105457 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:ufrg
a=ice-pwd:passwordpasswordpassword
a=ice-options:trickle
a=fingerprint:sha-256 3A:1B:4C:22:0B:6F:F4:52:0E:3D:5A:2C:6B:11:9E:44:7D:AC:09:12:33:98:E1:6A:2F:0D:B5:C3:77:41:68:90
a=setup:actpass
a=mid:0
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendonly
a=msid:- a1
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=ssrc:1001 cname:c
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:ufrg
a=ice-pwd:passwordpasswordpassword
a=ice-options:trickle
a=fingerprint:sha-256 3A:1B:4C:22:0B:6F:F4:52:0E:3D:5A:2C:6B:11:9E:44:7D:AC:09:12:33:98:E1:6A:2F:0D:B5:C3:77:41:68:90
a=setup:actpass
a=mid:1
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=sendonly
a=msid:- v1
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rid:q send
a=rid:h send
a=rid:f send
a=simulcast:send q;h;f
`

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// Reel answers a browser's simulcast offer as browsers require: the rids
// it takes as recv, a=simulcast:recv, and the rid header extensions; the
// video track gets one layer per rid.
func TestAnswerSimulcastOffer(t *testing.T) {
	for _, c := range []struct {
		name   string
		max    int
		offer  string
		layers []string
	}{
		{"three", 0, chromeSimulcastOffer, []string{"q", "h", "f"}},
		{"limited to two", 2, chromeSimulcastOffer, []string{"q", "h"}},
		{"one", 1, chromeSimulcastOffer, nil},
		{"paused layer and no msid", 0, strings.Replace(strings.Replace(chromeSimulcastOffer, "a=simulcast:send q;h;f", "a=simulcast:send q;~h;f", 1), "a=msid:- v1\n", "", 1), []string{"q", "h", "f"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			prefs := DefaultPreferences()
			prefs.SimulcastLayers = c.max
			offer, tracks, me, err := NegotiatePublisher([]byte(crlf(c.offer)), prefs)
			if err != nil {
				t.Fatal(err)
			}
			var rids []string
			for _, l := range tracks[1].Layers() {
				rids = append(rids, l.RID)
			}
			if strings.Join(rids, ",") != strings.Join(c.layers, ",") || tracks[1].Codec != live.VP8 {
				t.Fatalf("layers %v of %s, want %v of VP8", rids, tracks[1].Codec, c.layers)
			}
			engine, err := NewEngine(Config{UDPAddr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			defer engine.Close()
			pc, err := engine.NewPeerConnection(me)
			if err != nil {
				t.Fatal(err)
			}
			s := NewSession(pc, slog.New(slog.DiscardHandler))
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			answer, err := s.Answer(ctx, offer)
			if err != nil {
				t.Fatal(err)
			}
			ans := string(answer)
			want := []string{"urn:ietf:params:rtp-hdrext:sdes:mid", "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"}
			kept := c.layers
			if kept == nil {
				kept = []string{"q"}
			}
			for _, r := range kept {
				want = append(want, "a=rid:"+r+" recv")
			}
			for _, w := range want {
				if !strings.Contains(ans, w) {
					t.Errorf("answer lacks %q", w)
				}
			}
			simulcast := "a=simulcast:recv " + strings.Join(kept, ";")
			if strings.Contains(c.offer, "~h") {
				simulcast = "a=simulcast:recv q;~h;f"
			}
			if !strings.Contains(ans, simulcast+"\r\n") {
				t.Errorf("answer lacks %q:\n%s", simulcast, ans)
			}
			if c.max == 2 && strings.Contains(ans, "a=rid:f") {
				t.Error("the answer keeps rid f beyond the limit")
			}
		})
	}
}

func TestSimulcastOfferErrors(t *testing.T) {
	for name, offer := range map[string]string{
		"undeclared rid": strings.Replace(chromeSimulcastOffer, "a=simulcast:send q;h;f", "a=simulcast:send q;h;x", 1),
		"bad rid":        strings.Replace(strings.Replace(chromeSimulcastOffer, "a=rid:q send", "a=rid:q/1 send", 1), "send q;h;f", "send q/1;h;f", 1),
	} {
		if _, _, _, err := NegotiatePublisher([]byte(crlf(offer)), DefaultPreferences()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
