package ingest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pion/webrtc/v3"
)

// Fuzz targets for everything a stranger's bytes reach before a session
// exists: the SDP offer, the trickle fragment, RTP payload inspection.
// Run one with e.g. go test -run=^$ -fuzz=FuzzOffer -fuzztime=20s ./ingest
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
			seen := map[MediaKind]bool{}
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
	hub := NewHub(Reject)
	s, err := hub.Publish("fuzz", PublishSpec{Tracks: []*Track{
		{Kind: Video, Codec: H264, PayloadType: 102, ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f"},
		{Kind: Audio, Codec: Opus, PayloadType: 111, ClockRate: 48000, Channels: 2},
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

// FuzzIsKeyframeStart: payload inspection of every codec never reads past
// the payload.
func FuzzIsKeyframeStart(f *testing.F) {
	f.Add([]byte{0x65, 0x88})                                           // H.264 IDR
	f.Add([]byte{0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}) // STAP-A SPS PPS
	f.Add([]byte{0x7c, 0x85, 0x00})                                     // FU-A IDR start
	f.Add([]byte{0x90, 0x80, 0x80, 0x01, 0x10, 0x02})                   // VP8 X I M picture id
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0x08})
	f.Add([]byte{0x60, 0x01, 0x00, 0x03, 0x40, 0x01, 0x0c}) // H.265 AP with a VPS
	f.Add([]byte{0x62, 0x01, 0x93})                         // H.265 FU IDR start
	codecs := []Codec{H264, H265, VP8, VP9, AV1, Opus}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, c := range codecs {
			_ = IsKeyframeStart(c, payload)
		}
	})
}

// FuzzH264Params: the parameter-set observer runs on every H.264 packet of
// every publisher. It keeps only whole SPS/PPS NAL units, of their type.
func FuzzH264Params(f *testing.F) {
	f.Add([]byte{0x67, 0x42, 0xe0, 0x1f})
	f.Add([]byte{0x18, 0x00, 0x04, 0x67, 0x42, 0xe0, 0x1f, 0x00, 0x02, 0x68, 0xce, 0x00, 0x01, 0x65})
	f.Add([]byte{0x18, 0x00, 0x00})
	f.Add([]byte{0x18, 0xff, 0xff, 0x67})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var h h264Params
		in := bytes.Clone(payload)
		h.observe(payload)
		if !bytes.Equal(in, payload) {
			t.Fatal("observe modified the payload")
		}
		sps, pps := h.get()
		if sps != nil && (len(sps) == 0 || sps[0]&0x1f != naluSPS) {
			t.Fatalf("kept %x as SPS", sps)
		}
		if pps != nil && (len(pps) == 0 || pps[0]&0x1f != naluPPS) {
			t.Fatalf("kept %x as PPS", pps)
		}
		// What was kept must not alias the packet, which is recycled.
		if len(payload) > 0 && (sps != nil || pps != nil) {
			sps0, pps0 := bytes.Clone(sps), bytes.Clone(pps)
			for i := range payload {
				payload[i] ^= 0xff
			}
			sps2, pps2 := h.get()
			if !bytes.Equal(sps0, sps2) || !bytes.Equal(pps0, pps2) {
				t.Fatal("kept parameter sets alias the packet buffer")
			}
		}
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

// FuzzH265Params: the H.265 observer keeps only whole VPS/SPS/PPS NAL
// units, of their type, never aliasing the (recycled) packet.
func FuzzH265Params(f *testing.F) {
	f.Add([]byte{0x40, 0x01, 0x0c, 0x01})
	f.Add([]byte{0x60, 0x01, 0x00, 0x04, 0x40, 0x01, 0x0c, 0x01, 0x00, 0x03, 0x42, 0x01, 0x01})
	f.Add([]byte{0x60, 0x01, 0x00, 0x00})
	f.Add([]byte{0x60, 0x01, 0xff, 0xff, 0x44})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var h h265Params
		in := bytes.Clone(payload)
		h.observe(payload)
		if !bytes.Equal(in, payload) {
			t.Fatal("observe modified the payload")
		}
		vps, sps, pps := h.get()
		for want, got := range map[byte][]byte{h265VPS: vps, h265SPS: sps, h265PPS: pps} {
			if got != nil && (len(got) < 2 || h265Type(got[0]) != want) {
				t.Fatalf("kept %x as NAL type %d", got, want)
			}
		}
		if len(payload) > 0 {
			kept := [][]byte{bytes.Clone(vps), bytes.Clone(sps), bytes.Clone(pps)}
			for i := range payload {
				payload[i] ^= 0xff
			}
			v2, s2, p2 := h.get()
			if !bytes.Equal(kept[0], v2) || !bytes.Equal(kept[1], s2) || !bytes.Equal(kept[2], p2) {
				t.Fatal("kept parameter sets alias the packet buffer")
			}
		}
	})
}
