package whep

import (
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
)

// A player lines a viewer's audio and video up by their RTCP Sender
// Reports, each of which maps its track's RTP time to a wall-clock time.
// Reel writes them from the stream's clock, which places every packet at
// its capture as the publisher's own reports give it (live/clock.go), so
// a viewer sees the tracks as the recording has them. pion's report
// interceptor, which viewers ran before, maps a track's latest packet to
// the moment it was sent: a track the publisher's encoder sends later
// after capture (video, typically) was reported that much later, and a
// player delayed the other to match. Writing them here also takes the
// interceptor's lock and clock read off every packet sent.

// reportEvery is how often a viewer gets a Sender Report per track, as
// pion's interceptor and browsers send them. libwebrtc maps a stream's
// RTP time to its sender's clock only once it has two, so the first
// quickReports come reportEvery/4 apart: a viewer's audio and video line
// up a quarter of a second after its first packet, not a second.
var reportEvery = time.Second

const quickReports = 3

// reportRetry is how soon a report is tried again while the stream's
// clock has not settled (its times could still move).
const reportRetry = 100 * time.Millisecond

// senderReports is the Sender Report state of one viewer track, kept on
// the subscription's goroutine.
type senderReports struct {
	ssrc  uint32
	every time.Duration // reportEvery when the viewer came
	// The last packet sent: its track (a simulcast layer's, for layered
	// video), its RTP time as the hub has it and as sent, its arrival.
	src            *live.Track
	srcRTP, outRTP uint32
	at             time.Time
	// RFC 3550's sender's packet and octet (payload) counts.
	packets, octets uint32
	next            time.Time
	reports         int // sent so far
}

// sent notes a packet sent to the viewer: p as the hub has it, out as
// the viewer got it.
func (r *senderReports) sent(p *live.Packet, out *rtp.Packet) {
	r.src, r.srcRTP, r.outRTP, r.at = p.Track, p.RTP.Timestamp, out.Timestamp, p.Arrival
	r.packets++
	r.octets += uint32(len(out.Payload))
}

// report is the Sender Report of the track at now: the stream clock's
// time of the last packet sent, moved on to now, and the RTP time the
// viewer's stream would have then. ok is false before the clock settled.
func (r *senderReports) report(clock *live.Clock, now time.Time) (rtcp.SenderReport, bool) {
	if r.src == nil || r.ssrc == 0 || !clock.Settled() {
		return rtcp.SenderReport{}, false
	}
	at, ok := clock.Time(r.src, r.srcRTP)
	if !ok {
		return rtcp.SenderReport{}, false
	}
	d := now.Sub(r.at)
	return rtcp.SenderReport{
		SSRC:        r.ssrc,
		NTPTime:     live.NTPTimestamp(at.Add(d)),
		RTPTime:     r.outRTP + uint32(int64(d.Seconds()*r.src.RTPRate())),
		PacketCount: r.packets,
		OctetCount:  r.octets,
	}, true
}

// maybeReport sends the track's Sender Report if one is due at arrival,
// the time of the packet just sent.
func (vt *viewerTrack) maybeReport(arrival time.Time) {
	r := &vt.rep
	if arrival.Before(r.next) {
		return
	}
	now := time.Now()
	sr, ok := r.report(vt.sess.stream.Clock(), now)
	if !ok {
		r.next = arrival.Add(reportRetry)
		return
	}
	if r.reports++; r.reports < quickReports {
		r.next = arrival.Add(r.every / 4)
	} else {
		r.next = arrival.Add(r.every)
	}
	_ = vt.sess.PC.WriteRTCP([]rtcp.Packet{&sr})
}
