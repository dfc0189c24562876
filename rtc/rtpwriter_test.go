package rtc

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/pion/dtls/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/testwait"
)

// sendingPair is a peer connection of the engine sending one VP8 track
// to a pion peer that receives it, connected over loopback; received
// carries the packets the receiver decrypted.
type sendingPair struct {
	engine   *Engine
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticRTP
	ssrc     uint32
	pt       uint8
	received chan *rtp.Packet
}

// connectSending connects them with the receiver offering the given SRTP
// profiles; engineOffers makes the engine's side the offerer (so the
// DTLS server) instead of the answerer.
func connectSending(t testing.TB, profiles []dtls.SRTPProtectionProfile, engineOffers bool) *sendingPair {
	t.Helper()
	e, err := NewEngine(Config{UDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	me := &webrtc.MediaEngine{}
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: vp8, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	pc, err := e.NewViewerPeerConnection(me)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(vp8, "video", "test")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
		}
	}()

	var se webrtc.SettingEngine
	se.SetSRTPProtectionProfiles(profiles...)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	rme := &webrtc.MediaEngine{}
	if err := rme.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	recv, err := webrtc.NewAPI(webrtc.WithMediaEngine(rme), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = recv.Close() })
	p := &sendingPair{engine: e, pc: pc, track: track, received: make(chan *rtp.Packet, 1000)}
	recv.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case p.received <- pkt:
			default:
			}
		}
	})

	offerer, answerer := recv, pc
	if engineOffers {
		offerer, answerer = pc, recv
	} else if _, err := recv.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offerAnswer(t, offerer, answerer)

	testwait.Until(t, 10*time.Second, "the engine's and the receiver's peer connections to connect", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected && recv.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	enc := sender.GetParameters()
	p.ssrc = uint32(enc.Encodings[0].SSRC)
	p.pt = uint8(enc.Codecs[0].PayloadType)
	return p
}

// offerAnswer runs offer and answer between two peer connections, each
// side's candidates gathered before its description is sent.
func offerAnswer(t testing.TB, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	describe := func(pc *webrtc.PeerConnection, d webrtc.SessionDescription) webrtc.SessionDescription {
		done := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(d); err != nil {
			t.Fatal(err)
		}
		<-done
		return *pc.LocalDescription()
	}
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := answerer.SetRemoteDescription(describe(offerer, offer)); err != nil {
		t.Fatal(err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := offerer.SetRemoteDescription(describe(answerer, answer)); err != nil {
		t.Fatal(err)
	}
}

// The writer's packets are decrypted by a pion receiver, whatever SRTP
// profile it negotiated and whichever end is the DTLS client, arrive
// whole and in order, and leave through the shared socket's batch.
func TestRTPWriterReachesAPionReceiver(t *testing.T) {
	for _, c := range []struct {
		name         string
		profiles     []dtls.SRTPProtectionProfile
		engineOffers bool
	}{
		{"aes128gcm", []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM}, false},
		{"aes128cm", []dtls.SRTPProtectionProfile{dtls.SRTP_AES128_CM_HMAC_SHA1_80}, false},
		{"dtls-server", []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := connectSending(t, c.profiles, c.engineOffers)
			w, err := p.engine.NewRTPWriter(p.pc)
			if err != nil {
				t.Fatal(err)
			}
			if gcm := c.profiles[0] == dtls.SRTP_AEAD_AES_128_GCM; (w.gcm != nil) != gcm || (w.ctx != nil) == gcm {
				t.Fatalf("profile %v: Reel's GCM sender %v, pion's context %v", c.profiles[0], w.gcm != nil, w.ctx != nil)
			}
			before := p.engine.OutputStats().Packets
			// The receiver may take a moment to start its SRTP session
			// after DTLS: send until 50 packets in a row have come.
			var got []*rtp.Packet
			deadline := time.Now().Add(10 * time.Second)
			for seq := uint16(65500); len(got) < 50; seq++ { // across the wrap
				if time.Now().After(deadline) {
					t.Fatalf("%d packets received", len(got))
				}
				payload := bytes.Repeat([]byte{byte(seq)}, 900+int(seq%200))
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.pt, SSRC: p.ssrc, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: seq%4 == 0}, Payload: payload}
				var padding byte
				switch seq % 10 {
				case 3: // padding as a hub packet has it: its size in the header
					pkt.Header.Padding, pkt.Header.PaddingSize, padding = true, 20, 20
				case 7: // a probe's padding-only packet: in the payload, as pion takes it
					pkt.Header.Padding, padding = true, 200
					pkt.Payload = make([]byte, padding)
					pkt.Payload[padding-1] = padding
					payload = nil
				}
				if err := w.WriteRTP(pkt); err != nil {
					t.Fatal(err)
				}
				select {
				case r := <-p.received:
					if r.SequenceNumber != seq || r.Timestamp != pkt.Timestamp || r.Marker != pkt.Marker || !bytes.Equal(r.Payload, payload) || r.Padding != (padding > 0) || r.PaddingSize != padding {
						t.Fatalf("received seq %d ts %d (%d bytes, padding %d), sent seq %d ts %d (%d bytes, padding %d)", r.SequenceNumber, r.Timestamp, len(r.Payload), r.PaddingSize, seq, pkt.Timestamp, len(payload), padding)
					}
					got = append(got, r)
				case <-time.After(100 * time.Millisecond):
					got = got[:0]
				}
			}
			testwait.Until(t, 5*time.Second, "the shared socket to count the packets", func() bool {
				return p.engine.OutputStats().Packets-before >= 50
			})
		})
	}
}

// A pair the shared sockets do not carry is refused, so the caller keeps
// pion's path.
func TestRTPWriterRoutes(t *testing.T) {
	e, err := NewEngine(Config{UDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(e.UDPPort())
	pair := func(typ webrtc.ICECandidateType, proto webrtc.ICEProtocol, local string, localPort uint16, remote string) *webrtc.ICECandidatePair {
		return &webrtc.ICECandidatePair{
			Local:  &webrtc.ICECandidate{Typ: typ, Protocol: proto, Address: local, Port: localPort},
			Remote: &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypeHost, Protocol: proto, Address: remote, Port: 5000},
		}
	}
	rt, err := e.socks.route(pair(webrtc.ICECandidateTypeHost, webrtc.ICEProtocolUDP, "127.0.0.1", port, "127.0.0.1"))
	if err != nil || rt.addr.String() != "127.0.0.1:5000" {
		t.Fatalf("host pair: %v, %v", rt, err)
	}
	// A 1:1 NAT's address on the only socket of the port.
	if _, err := e.socks.route(pair(webrtc.ICECandidateTypeHost, webrtc.ICEProtocolUDP, "203.0.113.7", port, "198.51.100.2")); err != nil {
		t.Fatalf("NAT address: %v", err)
	}
	for name, p := range map[string]*webrtc.ICECandidatePair{
		"relay":      pair(webrtc.ICECandidateTypeRelay, webrtc.ICEProtocolUDP, "127.0.0.1", port, "127.0.0.1"),
		"tcp":        pair(webrtc.ICECandidateTypeHost, webrtc.ICEProtocolTCP, "127.0.0.1", port, "127.0.0.1"),
		"other port": pair(webrtc.ICECandidateTypeHost, webrtc.ICEProtocolUDP, "127.0.0.1", port+1, "127.0.0.1"),
		"mdns":       pair(webrtc.ICECandidateTypeHost, webrtc.ICEProtocolUDP, "127.0.0.1", port, "x.local"),
		"none":       nil,
	} {
		if _, err := e.socks.route(p); !errors.Is(err, ErrNoDirectRoute) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// BenchmarkRTPWriter: one 1200-byte packet encrypted (AES-128-GCM) and
// queued on the shared socket, through the writer and through pion's
// track, to a pion receiver over loopback.
func BenchmarkRTPWriter(b *testing.B) {
	for _, direct := range []bool{true, false} {
		name := "pion"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			p := connectSending(b, []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM}, false)
			write := p.track.WriteRTP
			if direct {
				w, err := p.engine.NewRTPWriter(p.pc)
				if err != nil {
					b.Fatal(err)
				}
				write = w.WriteRTP
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.pt, SSRC: p.ssrc}, Payload: make([]byte, 1200)}
			b.ReportAllocs()
			for b.Loop() {
				pkt.SequenceNumber++
				if err := write(pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
