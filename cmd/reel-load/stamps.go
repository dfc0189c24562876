package main

import (
	"sync/atomic"
	"time"
)

// now is the time in Unix nanoseconds: the clock of the kernel's receive
// timestamps (SO_TIMESTAMPNS), so send and receive times compare exactly.
func now() int64 { return time.Now().UnixNano() }

// stampTable remembers when each RTP packet of one stream track left the
// publisher, by sequence number. Gateways keep the publisher's sequence
// numbers and timestamps (WHEP and RTSP rewrite SSRC and payload type
// only), so a viewer finds its packet's send time by sequence number and
// checks the RTP timestamp to be sure it is the same packet. A slot is
// reused after 65536 packets, four minutes of 2.5 Mbit/s video.
type stampTable struct {
	sent [1 << 16]atomic.Int64  // send time, Unix ns; 0 = never
	ts   [1 << 16]atomic.Uint32 // RTP timestamp of the packet
}

func (t *stampTable) stamp(seq uint16, rtpTS uint32, at int64) {
	t.ts[seq].Store(rtpTS)
	t.sent[seq].Store(at)
}

// lookup returns the send time of the packet, or 0 when unknown.
func (t *stampTable) lookup(seq uint16, rtpTS uint32) int64 {
	at := t.sent[seq].Load()
	if at == 0 || t.ts[seq].Load() != rtpTS {
		return 0
	}
	return at
}

// streamStamps holds the tables of one published stream: with -simulcast
// one per video layer, by rid (a viewer pinned to a layer gets that
// layer's numbering unchanged).
type streamStamps struct {
	video, audio stampTable
	layers       map[string]*stampTable
}

func (s *streamStamps) table(video bool) *stampTable {
	if video {
		return &s.video
	}
	return &s.audio
}

// layerTable is the table of rid's video, or table(video) without layers.
func (s *streamStamps) layerTable(video bool, rid string) *stampTable {
	if t := s.layers[rid]; video && t != nil {
		return t
	}
	return s.table(video)
}
