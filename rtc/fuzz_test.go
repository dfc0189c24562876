package rtc

import (
	"errors"
	"strings"
	"testing"

	"github.com/pion/webrtc/v3"
	"github.com/reel-gateway/reel/live"
)

// Fuzz targets for everything a stranger's bytes reach before a session
// exists: the SDP offer and the trickle fragment.
// Run one with e.g. go test -run=^$ -fuzz=FuzzOffer -fuzztime=20s ./rtc
// (.ci/fuzz.sh runs them all). The seeds live in testdata/fuzz/<Target>.

// fuzzSeedOffers are real-world shaped offers: OBS H.264, a browser with
// every codec, a WHEP recvonly offer.
func fuzzSeedOffers() []string {
	obs := strings.ReplaceAll(strings.ReplaceAll(obsOffer("42e01f", "1"), "PM", "1"), "\n", "\r\n")
	return []string{
		obs,
		strings.ReplaceAll(obs, "sendonly", "recvonly"),
		strings.ReplaceAll(obs, "H264/90000", "VP8/90000"),
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n" +
			"a=rtpmap:96 VP9/90000\r\na=fmtp:96 profile-id=2\r\na=rtpmap:97 AV1/90000\r\na=sendonly\r\n",
	}
}

// checkOfferErr: every refusal is an OfferError, so the API answers 400 or
// 422 with a sentence, never 500.
func checkOfferErr(t *testing.T, what string, err error) {
	var oe *OfferError
	if err != nil && !errors.As(err, &oe) {
		t.Fatalf("%s: error %T %v is not an OfferError", what, err, err)
	}
	if oe != nil && oe.Msg == "" {
		t.Fatalf("%s: OfferError without a message", what)
	}
}

// FuzzOffer: parseOffer and negotiate, publishing and viewing, never panic;
// a negotiated track has a codec from the preferences and one of each kind.
func FuzzOffer(f *testing.F) {
	for _, s := range fuzzSeedOffers() {
		f.Add([]byte(s))
	}
	prefs := DefaultPreferences()
	f.Fuzz(func(t *testing.T, offer []byte) {
		sd, err := parseOffer(offer)
		checkOfferErr(t, "parseOffer", err)
		if err != nil {
			return
		}
		for _, sending := range []bool{true, false} {
			tracks, me, err := negotiate(sd, prefs, sending)
			checkOfferErr(t, "negotiate", err)
			if err != nil {
				continue
			}
			if me == nil || len(tracks) == 0 || len(tracks) > 2 {
				t.Fatalf("negotiate returned %d tracks, engine %v", len(tracks), me)
			}
			seen := map[live.MediaKind]bool{}
			for _, tr := range tracks {
				if seen[tr.Kind] || tr.Codec.Kind() != tr.Kind || tr.ClockRate != tr.Codec.ClockRate() {
					t.Fatalf("bad track %+v", tr)
				}
				seen[tr.Kind] = true
			}
		}
	})
}

// FuzzNegotiateViewer: a WHEP offer against a live H.264+Opus stream.
func FuzzNegotiateViewer(f *testing.F) {
	for _, s := range fuzzSeedOffers() {
		f.Add([]byte(s))
	}
	hub := live.NewHub(live.Reject)
	s, err := hub.Publish("fuzz", live.PublishSpec{Tracks: []*live.Track{
		{Kind: live.Video, Codec: live.H264, PayloadType: 102, ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f"},
		{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, offer []byte) {
		vts, me, err := NegotiateViewer(offer, s)
		checkOfferErr(t, "NegotiateViewer", err)
		if err == nil && (me == nil || len(vts) == 0 || len(vts) > 2) {
			t.Fatalf("NegotiateViewer returned %d tracks", len(vts))
		}
	})
}

// FuzzSDPFrag: trickle bodies (RFC 8840) parse or fail with an OfferError;
// every candidate says which section it belongs to.
func FuzzSDPFrag(f *testing.F) {
	f.Add([]byte("a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 UDP 2122317823 127.0.0.1 53711 typ host\r\na=end-of-candidates\r\n"))
	f.Add([]byte("a=candidate:1 1 UDP 1 10.0.0.1 1 typ host\nm=video 9 RTP/AVP 0\na=candidate:2 1 UDP 1 ::1 2 typ host\n"))
	f.Add([]byte("m=\na=mid:\n\r\n=\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		frag, err := parseSDPFrag(body)
		checkOfferErr(t, "parseSDPFrag", err)
		if err == nil {
			for _, c := range frag.candidates {
				if (c.SDPMid == nil) == (c.SDPMLineIndex == nil) {
					t.Fatalf("candidate %q has mid %v and index %v", c.Candidate, c.SDPMid, c.SDPMLineIndex)
				}
				if !strings.HasPrefix(c.Candidate, "candidate:") {
					t.Fatalf("candidate %q", c.Candidate)
				}
			}
		}
		// buildSDPFrag reads our own local description, but must not
		// panic on any text either.
		_ = buildSDPFrag(string(body))
		_ = sdpValue(string(body), "a=ice-ufrag:")
	})
}

// FuzzOfferAnswer goes one step further than FuzzOffer, as far as a POST
// does before ICE: pion applies an offer that negotiate accepted and makes
// an answer. Slower (a peer connection per input), so seeds are few.
func FuzzOfferAnswer(f *testing.F) {
	for _, s := range fuzzSeedOffers() {
		f.Add([]byte(s))
	}
	prefs := DefaultPreferences()
	f.Fuzz(func(t *testing.T, offer []byte) {
		sd, err := parseOffer(offer)
		if err != nil {
			return
		}
		_, me, err := negotiate(sd, prefs, true)
		if err != nil {
			return
		}
		pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
			return
		}
		_, _ = pc.CreateAnswer(nil)
	})
}
