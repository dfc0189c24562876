package whep

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/stdnet"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/whipclient"
	"github.com/reel-gateway/reel/live"
)

// lossyNet is pion's network whose sockets lose the 50th RTP packet they
// receive; lost holds its sequence number plus one once it happened.
type lossyNet struct {
	*stdnet.Net
	lost *atomic.Uint32
}

func (n *lossyNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &lossyConn{UDPConn: c, lost: n.lost}, nil
}

type lossyConn struct {
	transport.UDPConn
	lost *atomic.Uint32
	rtp  int
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.UDPConn.ReadFrom(b)
		if err != nil || n < 12 || b[0] < 128 || b[0] > 191 || (b[1] >= 192 && b[1] <= 223) {
			return n, addr, err
		}
		if c.rtp++; c.rtp == 50 {
			c.lost.Store(uint32(b[2])<<8 | uint32(b[3]) + 1)
			continue
		}
		return n, addr, err
	}
}

// A packet a viewer loses comes again when its NACK generator asks, from
// the hub packets the session holds.
func TestLostPacketIsResentOnNACK(t *testing.T) {
	hub := live.NewHub(live.Reject)
	srv := startServer(t, hub, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := hubtest.Publish(ctx, hub, "cam", hubtest.Source{Video: live.VP8, Loop: true}); err != nil {
		t.Fatal(err)
	}

	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(me, reg); err != nil {
		t.Fatal(err)
	}
	base, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	lost := new(atomic.Uint32)
	se := whipclient.LoopbackSettingEngine()
	se.SetNet(&lossyNet{Net: base, lost: lost})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	recovered := make(chan struct{})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if l := lost.Load(); l != 0 && uint32(p.SequenceNumber) == l-1 {
				close(recovered)
				return
			}
		}
	})
	sess := play(t, ctx, srv, pc, "cam", gatheredOffer(t, pc), PlayOptions{})
	select {
	case <-recovered:
		if sess.direct.Load() == nil {
			t.Error("the packet was resent through pion, not the session's RTPWriter")
		}
	case <-time.After(20 * time.Second):
		if lost.Load() == 0 {
			t.Fatal("the viewer never got 50 packets")
		}
		t.Fatalf("packet %d was lost and never resent", lost.Load()-1)
	}
}
