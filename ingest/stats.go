package ingest

import (
	"sync"
	"time"
)

// TrackInfo is a snapshot of one track for the API.
type TrackInfo struct {
	Kind        MediaKind `json:"kind"`
	Codec       Codec     `json:"codec"`
	ClockRate   uint32    `json:"clock_rate"`
	Channels    uint16    `json:"channels,omitempty"`
	Fmtp        string    `json:"fmtp,omitempty"`
	Packets     uint64    `json:"packets"`
	Bytes       uint64    `json:"bytes"`
	BitrateKbps float64   `json:"bitrate_kbps"`
}

// OutputInfo says whether an output can carry the stream, and why not.
type OutputInfo struct {
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
}

// StreamInfo is a snapshot of a live stream for the API.
type StreamInfo struct {
	Name             string                `json:"name"`
	Session          string                `json:"session"`
	Protocol         string                `json:"protocol"`
	Remote           string                `json:"remote,omitempty"`
	Started          time.Time             `json:"started"`
	Tracks           []TrackInfo           `json:"tracks"`
	Viewers          map[string]int        `json:"viewers"`
	Dropped          map[string]uint64     `json:"dropped_packets"`
	Outputs          map[Output]OutputInfo `json:"outputs"`
	KeyframeRequests uint64                `json:"keyframe_requests"`
	BadPackets       uint64                `json:"bad_packets"`
}

// Info takes a snapshot of the stream.
func (s *Stream) Info() StreamInfo {
	info := StreamInfo{
		Name:             s.Name,
		Session:          s.spec.Session,
		Protocol:         s.spec.Protocol,
		Remote:           s.spec.Remote,
		Started:          s.Started.UTC(),
		Viewers:          map[string]int{},
		Dropped:          map[string]uint64{},
		Outputs:          map[Output]OutputInfo{},
		KeyframeRequests: s.keyframeRequests.Load(),
		BadPackets:       s.badPackets.Load(),
	}
	for _, t := range s.spec.Tracks {
		bytes := t.bytes.Load()
		info.Tracks = append(info.Tracks, TrackInfo{
			Kind: t.Kind, Codec: t.Codec, ClockRate: t.ClockRate, Channels: t.Channels, Fmtp: t.Fmtp,
			Packets: t.packets.Load(), Bytes: bytes, BitrateKbps: t.rate.kbps(bytes),
		})
	}
	for _, sub := range s.Subscriptions() {
		info.Viewers[sub.Kind]++
		info.Dropped[sub.Kind] += sub.Dropped()
	}
	for _, out := range []Output{OutputWHEP, OutputRTSP, OutputHLS, OutputRecord} {
		o := OutputInfo{Available: true}
		for _, t := range s.spec.Tracks {
			if ok, why := t.Codec.CarriedBy(out); !ok {
				o = OutputInfo{Available: false, Reason: why}
			}
		}
		info.Outputs[out] = o
	}
	return info
}

// rateMeter turns a byte counter into a bitrate averaged over the time
// between two readings (at least a second, so frequent polling stays smooth).
type rateMeter struct {
	mu        sync.Mutex
	lastTime  time.Time
	lastBytes uint64
	kbpsValue float64
}

func (m *rateMeter) kbps(bytes uint64) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.lastTime.IsZero() {
		m.lastTime, m.lastBytes = now, bytes
		return 0
	}
	if d := now.Sub(m.lastTime); d >= time.Second {
		m.kbpsValue = float64(bytes-m.lastBytes) * 8 / 1000 / d.Seconds()
		m.lastTime, m.lastBytes = now, bytes
	}
	return m.kbpsValue
}
