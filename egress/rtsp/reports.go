package rtsp

import (
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtcp"
)

// lastPacket is a forwarded packet's RTP timestamp, its time on the
// stream's clock and when it arrived.
type lastPacket struct {
	rtp uint32
	ntp time.Time
	at  time.Time
	ok  bool
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
	last := out.last
	ls.lastMu.Unlock()
	if !last.ok {
		last.rtp, last.ntp, last.at, last.ok = clock.Latest(out.track)
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
	rate := float64(out.track.ClockRate)
	if rate == 0 {
		rate = float64(out.track.Codec.ClockRate())
	}
	return &rtcp.SenderReport{
		SSRC:    ssrc,
		NTPTime: ntpTimestamp(last.ntp.Add(d)),
		RTPTime: last.rtp + uint32(d.Seconds()*rate),
	}
}

// reportTo queues one Sender Report per track for a reader that is
// starting to play, ahead of its first RTP packet. Only cluster relays
// get it (handler.go): a player such as ffmpeg places a track by the PLAY
// response's RTP-Info first and moves it when a report comes, while a
// relay's clock waits for the reports before it places anything.
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

// ntpTimestamp is t as a 64-bit NTP timestamp (RFC 3550).
func ntpTimestamp(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix() + unixToNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}
