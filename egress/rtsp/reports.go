package rtsp

import (
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtcp"

	"github.com/reel-gateway/reel/live"
)

// lastPacket is a forwarded packet's RTP timestamp, its time on the
// stream's clock and when it arrived.
type lastPacket struct {
	rtp uint32
	ntp time.Time
	at  time.Time
	ok  bool
}

// reportEvery is how often every reader gets a Sender Report per track
// (RFC 3550's minimum RTCP interval), from the stream's clock. Reel writes
// them itself: gortsplib v4.16.2's own (every 10 s, turned off in
// server.go) carry nanoseconds where NTP's fraction of a second belongs
// (bluenviron/gortsplib#869, fixed only in later majors), so each put its
// track up to 767 ms early: ffmpeg moved the tracks at every one (logging
// timestamps going back) and a cluster edge's clock refused them.
var reportEvery = 5 * time.Second

// sendReport writes out's Sender Report at now to every reader and
// schedules the next. Called on the subscription's goroutine.
func (ls *liveStream) sendReport(out *output, now time.Time) {
	sr := ls.report(out, now)
	if sr == nil {
		return
	}
	if !out.anchor.ok {
		// Nothing of the track was forwarded yet: its packets keep the
		// mapping this report gives (the clock's now), not the one the
		// clock has refined by a millisecond when the first comes.
		out.anchor = anchor{ok: true, rtp: sr.RTPTime, ntp: live.NTPTime(sr.NTPTime)}
	}
	out.nextReport = now.Add(reportEvery)
	_ = ls.rtsp.WritePacketRTCP(out.media, sr)
}

// report is the Sender Report of out at now, extrapolated from its latest
// forwarded packet as gortsplib does, or from the track's latest packet
// on the stream's clock when none has been forwarded yet (a reader that
// plays before the clock settled); nil before the clock has settled (its
// times could still change).
func (ls *liveStream) report(out *output, now time.Time) *rtcp.SenderReport {
	clock := ls.src.Clock()
	if !clock.Settled() {
		return nil
	}
	ls.lastMu.Lock()
	last, packets, octets := out.last, out.packets, out.octets
	ls.lastMu.Unlock()
	if !last.ok {
		last.rtp, last.ntp, last.at, last.ok = clock.Latest(ls.carried(out))
		if !last.ok {
			return nil
		}
	}
	var ssrc uint32
	if ms, ok := ls.rtsp.Stats().Medias[out.media]; ok {
		for _, f := range ms.Formats {
			ssrc = f.LocalSSRC
		}
	}
	if ssrc == 0 {
		return nil
	}
	d := now.Sub(last.at)
	return &rtcp.SenderReport{
		SSRC:        ssrc,
		NTPTime:     live.NTPTimestamp(last.ntp.Add(d)),
		RTPTime:     last.rtp + uint32(d.Seconds()*out.rate),
		PacketCount: packets,
		OctetCount:  octets,
	}
}

// reportTo queues one Sender Report per track for a reader that is
// starting to play, ahead of its first RTP packet (handler.go).
func (ls *liveStream) reportTo(ss *gortsplib.ServerSession) {
	now := time.Now()
	for _, m := range ss.SetuppedMedias() {
		for i := range ls.outs {
			out := &ls.outs[i]
			if m != out.media {
				continue
			}
			if sr := ls.report(out, now); sr != nil {
				_ = ss.WritePacketRTCP(out.media, sr)
			}
		}
	}
}
