package whep

import (
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// A viewer's RTP leaves through an rtc.RTPWriter, encrypted with the
// connection's own keys straight into the shared socket's batch, once
// the viewer is connected over a pair the shared socket carries; a
// relayed or TCP viewer, or one whose keys cannot be read, goes through
// pion's track as before. Either way one path carries all of a viewer's
// RTP from its first packet: WritePacket forwards nothing before the
// choice is made.

// boundTrack is pion's track, keeping the SSRC and payload type pion
// bound it to: pion writes them into every packet it sends, and the
// RTPWriter must too.
type boundTrack struct {
	*webrtc.TrackLocalStaticRTP
	bound atomic.Bool
	ssrc  atomic.Uint32
	pt    atomic.Uint32
}

// Bind implements webrtc.TrackLocal.
func (t *boundTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, err := t.TrackLocalStaticRTP.Bind(ctx)
	if err == nil {
		t.ssrc.Store(uint32(ctx.SSRC()))
		t.pt.Store(uint32(c.PayloadType))
		t.bound.Store(true)
	}
	return c, err
}

// sendDirect makes the session's RTPWriter if it can; it runs once, when
// the viewer has connected and before anything is forwarded.
func (sess *Session) sendDirect(srv *Server) {
	if srv.viaPion {
		return
	}
	for _, vt := range sess.tracks {
		if !vt.local.bound.Load() {
			sess.Log.Debug("sending through pion: a track is not bound")
			return
		}
		vt.ssrc, vt.pt = vt.local.ssrc.Load(), uint8(vt.local.pt.Load())
	}
	w, err := srv.engine.NewRTPWriter(sess.PC)
	if err != nil {
		sess.Log.Debug("sending through pion", "reason", err)
		return
	}
	sess.direct.Store(w)
}

// write sends one packet of the track: through the session's RTPWriter,
// with the track's SSRC and payload type, or through pion's track.
func (vt *viewerTrack) write(pkt *rtp.Packet) error {
	if w := vt.sess.direct.Load(); w != nil {
		pkt.SSRC, pkt.PayloadType = vt.ssrc, vt.pt
		return w.WriteRTP(pkt)
	}
	if pkt.Header.Padding && pkt.Header.PaddingSize > 0 {
		return vt.local.WriteRTP(vt.padded(pkt))
	}
	return vt.local.WriteRTP(pkt)
}

// padded is pkt with its padding in its payload, the count in the last
// byte: pion's SRTP session writes a packet's header and payload and
// leaves Header.PaddingSize's bytes out, which would send the padding
// bit with no padding (a packet receivers refuse). Only a publisher's
// padding packets (bandwidth probes, mostly) have any, so the copy is
// rare.
func (vt *viewerTrack) padded(pkt *rtp.Packet) *rtp.Packet {
	n := len(pkt.Payload) + int(pkt.Header.PaddingSize)
	if cap(vt.padBuf) < n {
		vt.padBuf = make([]byte, 0, max(n, 1500))
	}
	buf := vt.padBuf[:n]
	copy(buf, pkt.Payload)
	clear(buf[len(pkt.Payload) : n-1])
	buf[n-1] = pkt.Header.PaddingSize
	vt.padOut = *pkt
	vt.padOut.Payload = buf
	vt.padOut.Header.PaddingSize = 0
	vt.padOut.PaddingSize = 0
	return &vt.padOut
}
