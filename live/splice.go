package live

import "time"

// Splice joins the layers of a simulcast track into one RTP stream, for an
// output that carries one layer at a time and switches between them (a
// WHEP viewer's video, an RTSP path that follows the top layer). Each
// layer numbers and times its packets on its own; a splice gives the
// packets of the layer carried the output's numbering: out = in + offset,
// with offsets set at each switch so that the output's sequence numbers
// run on from the last sent and its timestamps go forward by the time
// between the two packets. That time is taken from the stream's clock
// when it places both packets (the layers show the same captured
// pictures, so the switch keyframe lands where its picture belongs and
// the output's Sender Reports, made from the same clock, agree), from
// their arrivals otherwise; it is at least one frame, since the keyframe
// switched at may show the instant of the last picture sent (its layer's
// packets came first) and two pictures at one instant are an error to
// ffmpeg and to millisecond containers.
//
// The zero Splice carries the first layer with its own numbering. It is
// used by one goroutine.
type Splice struct {
	sent      bool
	seqOffset uint16
	tsOffset  uint32
	// The newest packet sent: as the output has it, and as the hub does.
	lastSeq     uint16
	lastTS      uint32
	lastTrack   *Track
	lastRTP     uint32
	lastArrival time.Time
	// frame is the latest step between two pictures sent, in ticks.
	frame uint32
}

// Forward returns the sequence number and timestamp the output gives p,
// a packet of the layer carried.
func (s *Splice) Forward(p *Packet) (seq uint16, ts uint32) {
	seq, ts = p.RTP.SequenceNumber+s.seqOffset, p.RTP.Timestamp+s.tsOffset
	if !s.sent || int16(seq-s.lastSeq) > 0 {
		if step := ts - s.lastTS; s.sent && step > 0 && step < uint32(p.Track.RTPRate()/5) {
			s.frame = step
		}
		s.sent, s.lastSeq, s.lastTS = true, seq, ts
		s.lastTrack, s.lastRTP, s.lastArrival = p.Track, p.RTP.Timestamp, p.Arrival
	}
	return seq, ts
}

// Switch makes keyframe p of another layer the next packet of the output:
// the layer carried from now on is p's. clock is the stream's clock (nil:
// the arrivals time the switch).
func (s *Splice) Switch(p *Packet, clock *Clock) {
	if !s.sent {
		return
	}
	s.seqOffset = s.lastSeq + 1 - p.RTP.SequenceNumber
	gap := p.Arrival.Sub(s.lastArrival)
	if clock != nil {
		if at, ok := clock.Time(p.Track, p.RTP.Timestamp); ok {
			if last, ok := clock.Time(s.lastTrack, s.lastRTP); ok {
				gap = at.Sub(last)
			}
		}
	}
	rate := p.Track.RTPRate()
	frame := s.frame
	if frame == 0 {
		frame = uint32(rate / 30)
	}
	ticks := max(uint32(max(gap.Seconds()*rate, 0)), frame)
	s.tsOffset = s.lastTS + ticks - p.RTP.Timestamp
}

// Insert takes the next sequence number for a packet of the output's own
// (padding), timed with the last packet sent; the layer's later packets
// are numbered after it.
func (s *Splice) Insert() (seq uint16, ts uint32) {
	s.lastSeq++
	s.seqOffset++
	return s.lastSeq, s.lastTS
}
