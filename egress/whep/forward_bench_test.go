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

	"github.com/reel-gateway/reel/internal/whipclient"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
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
func benchViewers(b *testing.B, n int) (*live.Stream, []*Session, *atomic.Uint64) {
	b.Helper()
	hub := live.NewHub(live.Reject)
	srv := startServer(b, hub, Config{QueueSize: 4096, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	video := &live.Track{Kind: live.Video, Codec: live.H264, PayloadType: 102, ClockRate: 90000,
		Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	audio := &live.Track{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2}
	stream, err := hub.Publish("bench", live.PublishSpec{Tracks: []*live.Track{video, audio}})
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
		sessions = append(sessions, dialBenchViewer(b, srv, "bench", PlayOptions{}, base, got))
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
	video := stream.Track(live.Video)
	p := &live.Packet{Track: video, Arrival: time.Now()}
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
			video := stream.Track(live.Video)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				_ = stream.WriteRTP(video, idrPacket(uint16(i)), time.Now())
				if i%64 == 63 && i >= 256 {
					for _, s := range sessions {
						for s.sub.Delivered()+s.sub.Dropped()+s.sub.Shed() < uint64(i+1)-256 {
							time.Sleep(20 * time.Microsecond)
						}
					}
				}
			}
			for _, s := range sessions {
				for s.sub.Delivered()+s.sub.Dropped()+s.sub.Shed() < uint64(b.N) {
					time.Sleep(20 * time.Microsecond)
				}
			}
			b.StopTimer()
			var dropped uint64
			for _, s := range sessions {
				dropped += s.sub.Dropped() + s.sub.Shed()
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

// BenchmarkWHEPLayerSwitch is one simulcast viewer's forwarding path while
// it switches layers: packets of three layers arrive interleaved (each
// layer's own sequence numbers and timestamps, a keyframe every 30
// packets), the viewer's pinned layer flips between low and high every 300
// packets, and each switch waits for the target's keyframe, then rewrites
// sequence numbers and timestamps. allocs/op must be 0: a switch costs
// no allocation per forwarded packet.
func BenchmarkWHEPLayerSwitch(b *testing.B) {
	hub := live.NewHub(live.Reject)
	srv := startServer(b, hub, Config{QueueSize: 4096, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	video := &live.Track{Kind: live.Video, Codec: live.VP8, PayloadType: 96, ClockRate: 90000}
	if err := video.AddLayers([]string{"q", "h", "f"}); err != nil {
		b.Fatal(err)
	}
	audio := &live.Track{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2}
	stream, err := hub.Publish("bench", live.PublishSpec{Tracks: []*live.Track{video, audio}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stream.Close)
	sess, got := benchViewer(b, srv, "bench", PlayOptions{Layer: "low"})
	sess.sub.Close() // the benchmark calls WritePacket itself
	layers := video.Layers()
	// The layers must look alive and sized for the switch logic.
	start := time.Now()
	for i, l := range layers {
		_ = stream.WriteRTP(l, vp8Packet(b, uint32(100+i), 0, 0, true, 160<<i, 90<<i), start)
	}
	pkts := make([][2]*live.Packet, len(layers)) // inter, key per layer
	for i, l := range layers {
		for k := range 2 {
			p := &live.Packet{Track: l}
			if err := p.RTP.Unmarshal(vp8Packet(b, uint32(100+i), 0, 0, k == 1, 160<<i, 90<<i)); err != nil {
				b.Fatal(err)
			}
			p.Retain() // the benchmark's own reference: the history never frees it
			pkts[i][k] = p
		}
	}
	sw := sess.tracks[0].sw
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		li := i % len(layers)
		n := i / len(layers) // this layer's packet number
		p := pkts[li][0]
		if n%30 == 0 {
			p = pkts[li][1]
		}
		p.RTP.SequenceNumber = uint16(n)
		p.RTP.Timestamp = uint32(n * 3000)
		p.Arrival = start.Add(time.Duration(i) * time.Millisecond)
		if i%300 == 0 {
			sw.pin = map[bool]string{true: "high", false: "low"}[i/300%2 == 0]
		}
		sess.WritePacket(p)
	}
	b.StopTimer()
	b.ReportMetric(float64(sess.LayerSwitches()), "switches")
	waitCount(got, 1)
}

// BenchmarkLayerSwitchRewrite is the simulcast logic alone, as
// BenchmarkWHEPLayerSwitch drives it, without pion's send path (whose own
// allocations, 4 per packet in pion v3.3.6's interceptor, ICE and SRTP
// writers, are the same for every viewer with or without simulcast): the
// layer choice, the wait for the target's keyframe, the switch and the
// rewriting of every forwarded packet. allocs/op is 0.
func BenchmarkLayerSwitchRewrite(b *testing.B) {
	video := &live.Track{Kind: live.Video, Codec: live.VP8, PayloadType: 96, ClockRate: 90000}
	if err := video.AddLayers([]string{"q", "h", "f"}); err != nil {
		b.Fatal(err)
	}
	stream, err := live.NewHub(live.Reject).Publish("bench", live.PublishSpec{Tracks: []*live.Track{video}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stream.Close)
	sub, err := stream.Subscribe("bench", live.ConsumerFunc(func(*live.Packet) {}), 0)
	if err != nil {
		b.Fatal(err)
	}
	sess := &Session{Session: rtc.NewSession(nil, slog.New(slog.DiscardHandler)), stream: stream, sub: sub, layered: true}
	sw := newLayerSwitch(sess, video, "low", nil)
	layers := video.Layers()
	start := time.Now()
	pkts := make([][2]*live.Packet, len(layers))
	for i, l := range layers {
		_ = stream.WriteRTP(l, vp8Packet(b, uint32(100+i), 0, 0, true, 160<<i, 90<<i), start)
		for k := range 2 {
			p := &live.Packet{Track: l}
			if err := p.RTP.Unmarshal(vp8Packet(b, uint32(100+i), 0, 0, k == 1, 160<<i, 90<<i)); err != nil {
				b.Fatal(err)
			}
			pkts[i][k] = p
		}
	}
	var out rtp.Packet
	forwarded := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		li := i % len(layers)
		n := i / len(layers)
		p := pkts[li][0]
		if n%30 == 0 {
			p = pkts[li][1]
		}
		p.RTP.SequenceNumber = uint16(n)
		p.RTP.Timestamp = uint32(n * 3000)
		p.Arrival = start.Add(time.Duration(i) * time.Millisecond)
		if i%300 == 0 {
			sw.pin = map[bool]string{true: "high", false: "low"}[i/300%2 == 0]
		}
		forwardHeader(&out, p)
		if sw.forward(p, &out) {
			forwarded++
		}
		out.Payload = nil
	}
	b.StopTimer()
	b.ReportMetric(float64(sw.switches.Load()), "switches")
	b.ReportMetric(float64(forwarded)/float64(b.N), "forwarded/op")
}

// vp8Packet is a VP8 packet with a picture id; a keyframe one carries the
// size header.
func vp8Packet(b *testing.B, ssrc uint32, seq uint16, ts uint32, key bool, w, h int) []byte {
	payload := make([]byte, 1100)
	copy(payload, []byte{0x90, 0x80, 0x80, 0x01, 0x11, 0x02, 0x00})
	if key {
		copy(payload, []byte{0x90, 0x80, 0x80, 0x01, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, byte(w), byte(w >> 8), byte(h), byte(h >> 8)})
	}
	raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Marker: true}, Payload: payload}).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// benchViewer connects one light viewer (dropNet) to name.
func benchViewer(b *testing.B, srv *Server, name string, opts PlayOptions) (*Session, *atomic.Uint64) {
	base, err := stdnet.NewNet()
	if err != nil {
		b.Fatal(err)
	}
	got := new(atomic.Uint64)
	sess := dialBenchViewer(b, srv, name, opts, base, got)
	for deadline := time.Now().Add(20 * time.Second); !sess.connected.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the viewer did not connect")
		}
	}
	return sess, got
}

// dialBenchViewer offers a receive-only pion peer whose packets only
// count into got (dropNet over base) to name, and takes the answer; it
// does not wait for the connection.
func dialBenchViewer(b *testing.B, srv *Server, name string, opts PlayOptions, base *stdnet.Net, got *atomic.Uint64) *Session {
	b.Helper()
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
	return play(b, context.Background(), srv, pc, name, gatheredOffer(b, pc), opts)
}
