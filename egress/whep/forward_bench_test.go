package whep

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/stdnet"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// dropNet is pion's network whose UDP sockets count and drop RTP instead of
// decrypting it, so a benchmark's viewers cost a receive call per packet
// and the time measured is the gateway's.
type dropNet struct {
	*stdnet.Net
	got *atomic.Uint64
}

func (n *dropNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &dropConn{UDPConn: c, got: n.got}, nil
}

type dropConn struct {
	transport.UDPConn
	got *atomic.Uint64
}

func (c *dropConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.UDPConn.ReadFrom(b)
		if err != nil || n < 12 || b[0] < 128 || b[0] > 191 || (b[1] >= 192 && b[1] <= 223) {
			return n, addr, err
		}
		c.got.Add(1)
	}
}

// benchViewers publishes an H.264 + Opus stream without media and connects
// n WHEP viewers to it; got counts the RTP packets they receive.
func benchViewers(b *testing.B, n int) (*ingest.Stream, []*Session, *atomic.Uint64) {
	b.Helper()
	hub := ingest.NewHub(ingest.Reject)
	srv := startServer(b, hub, Config{QueueSize: 4096, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	video := &ingest.Track{Kind: ingest.Video, Codec: ingest.H264, PayloadType: 102, ClockRate: 90000,
		Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	audio := &ingest.Track{Kind: ingest.Audio, Codec: ingest.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2}
	stream, err := hub.Publish("bench", ingest.PublishSpec{Tracks: []*ingest.Track{video, audio}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stream.Close)
	base, err := stdnet.NewNet()
	if err != nil {
		b.Fatal(err)
	}
	got := new(atomic.Uint64)
	var sessions []*Session
	for range n {
		me := &webrtc.MediaEngine{}
		if err := me.RegisterDefaultCodecs(); err != nil {
			b.Fatal(err)
		}
		se := whipclient.LoopbackSettingEngine()
		se.SetNet(&dropNet{Net: base, got: got})
		pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = pc.Close() })
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				b.Fatal(err)
			}
		}
		sess, answer, err := srv.Play(context.Background(), "bench", []byte(gatheredOffer(b, pc)), "127.0.0.1")
		if err != nil {
			b.Fatal(err)
		}
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
			b.Fatal(err)
		}
		sessions = append(sessions, sess)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, sess := range sessions {
		for !sess.connected.Load() {
			if time.Now().After(deadline) {
				b.Fatal("a viewer did not connect")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return stream, sessions, got
}

// idrPacket is an H.264 video packet that starts a keyframe (a single IDR
// NAL unit), so a new viewer forwards it at once.
func idrPacket(seq uint16) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: seq, Timestamp: 9000, SSRC: 1234}, Payload: make([]byte, 1100)}
	p.Payload[0] = 0x65
	raw, _ := p.Marshal()
	return raw
}

// BenchmarkWHEPForward is one viewer's forwarding path for one packet: the
// header rewrite, pion's interceptors, SRTP and the UDP send.
func BenchmarkWHEPForward(b *testing.B) {
	stream, sessions, got := benchViewers(b, 1)
	sess := sessions[0]
	sess.sub.Close() // the benchmark calls WritePacket itself
	video := stream.Track(ingest.Video)
	p := &ingest.Packet{Track: video, Arrival: time.Now()}
	if err := p.RTP.Unmarshal(idrPacket(1)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p.RTP.Payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.RTP.SequenceNumber = uint16(i)
		sess.WritePacket(p)
	}
	b.StopTimer()
	waitCount(got, uint64(b.N)*99/100)
}

// BenchmarkWHEPFanOut is the whole path from the hub to n viewers: one op
// is one publisher packet, delivered to every viewer. The producer waits
// for the viewers' queues so nothing is dropped.
func BenchmarkWHEPFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			stream, sessions, got := benchViewers(b, n)
			video := stream.Track(ingest.Video)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				_ = stream.WriteRTP(video, idrPacket(uint16(i)), time.Now())
				if i%64 == 63 && i >= 256 {
					for _, s := range sessions {
						for s.sub.Delivered()+s.sub.Dropped() < uint64(i+1)-256 {
							time.Sleep(20 * time.Microsecond)
						}
					}
				}
			}
			for _, s := range sessions {
				for s.sub.Delivered()+s.sub.Dropped() < uint64(b.N) {
					time.Sleep(20 * time.Microsecond)
				}
			}
			b.StopTimer()
			var dropped uint64
			for _, s := range sessions {
				dropped += s.sub.Dropped()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/viewer-packet")
			b.ReportMetric(float64(dropped)/float64(b.N*n)*100, "%hub-drop")
			waitCount(got, uint64(b.N*n)*99/100)
		})
	}
}

// waitCount gives the viewers' sockets a moment to read what was sent.
func waitCount(got *atomic.Uint64, n uint64) {
	for deadline := time.Now().Add(2 * time.Second); got.Load() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}
