package live

import (
	"math"
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
	// Width, Height and FPS of a video track (0 until known); for a
	// simulcast track, those of its top layer.
	Width  int     `json:"width,omitempty"`
	Height int     `json:"height,omitempty"`
	FPS    float64 `json:"fps,omitempty"`
	// Layers of a simulcast video track, lowest quality first.
	Layers []LayerInfo `json:"layers,omitempty"`
}

// LayerInfo is a snapshot of one simulcast layer.
type LayerInfo struct {
	RID         string  `json:"rid"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	BitrateKbps float64 `json:"bitrate_kbps"`
	FPS         float64 `json:"fps"`
	Packets     uint64  `json:"packets"`
	Bytes       uint64  `json:"bytes"`
}

// OutputInfo says whether an output can carry the stream, and why not.
type OutputInfo struct {
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
}

// StreamInfo is a snapshot of a live stream for the API.
type StreamInfo struct {
	Name     string            `json:"name"`
	Session  string            `json:"session,omitempty"`
	Protocol string            `json:"protocol"`
	Remote   string            `json:"remote,omitempty"`
	Started  time.Time         `json:"started"`
	Tracks   []TrackInfo       `json:"tracks"`
	Viewers  map[string]int    `json:"viewers"`
	Dropped  map[string]uint64 `json:"dropped_packets"`
	// Shed counts, by output, the packets shed for consumers that fell
	// further behind than their latency budget (shed.go).
	Shed             map[string]uint64     `json:"shed_packets"`
	Outputs          map[Output]OutputInfo `json:"outputs"`
	KeyframeRequests uint64                `json:"keyframe_requests"`
	// Sync says how the tracks are placed in time: "sender-reports"
	// (RTCP), "arrival" (smoothed arrival times), "mixed" or "pending".
	Sync string `json:"sync"`
	// InputLateMS is how much later than their least delay the stream's
	// packets of about the last second were read (Clock.Lateness): tens
	// of ms is a path's jitter, seconds a gateway behind its input or a
	// publisher's queue.
	InputLateMS float64 `json:"input_late_ms"`
	BadPackets  uint64  `json:"bad_packets"`
	// WHEPLayers counts, for a simulcast stream, the WHEP viewers on each
	// layer (by rid); a viewer between two layers counts on neither.
	WHEPLayers map[string]int `json:"whep_viewers_by_layer,omitempty"`
	// Consumers lists every subscription (Stream.Consumers); the API
	// fills it for one stream, not in the list of all.
	Consumers []ConsumerInfo `json:"consumers,omitempty"`
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
		Shed:             map[string]uint64{},
		Outputs:          map[Output]OutputInfo{},
		KeyframeRequests: s.keyframeRequests.Load(),
		BadPackets:       s.badPackets.Load(),
		Sync:             s.clock.Mode(),
		InputLateMS:      float64(s.clock.Lateness(time.Now()).Microseconds()) / 1000,
	}
	for _, t := range s.spec.Tracks {
		bytes := t.bytes.Load()
		ti := TrackInfo{
			Kind: t.Kind, Codec: t.Codec, ClockRate: t.ClockRate, Channels: t.Channels, Fmtp: t.Fmtp,
			Packets: t.packets.Load(), Bytes: bytes, BitrateKbps: t.rate.kbps(bytes),
		}
		if t.Kind == Video {
			top := t
			for _, l := range t.RankedLayers() {
				ti.Layers = append(ti.Layers, l.layerInfo())
				top = l
			}
			ti.Width, ti.Height = top.Size()
			ti.FPS = top.fps.perSecond(top.frames.Load())
		}
		info.Tracks = append(info.Tracks, ti)
	}
	video := s.Track(Video)
	for _, sub := range s.Subscriptions() {
		info.Viewers[sub.Kind]++
		info.Dropped[sub.Kind] += sub.Dropped()
		info.Shed[sub.Kind] += sub.Shed()
		if video == nil || video.layers == nil || sub.Kind != string(OutputWHEP) {
			continue
		}
		if info.WHEPLayers == nil {
			info.WHEPLayers = map[string]int{}
		}
		for _, l := range video.layers.list {
			if sub.Layers() == l.bit {
				info.WHEPLayers[l.RID]++
			}
		}
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

// ConsumerInfo is a snapshot of one subscription: what its consumer got,
// lost and has queued.
type ConsumerInfo struct {
	Output    string  `json:"output"`
	ID        string  `json:"id,omitempty"`
	Delivered uint64  `json:"delivered_packets"`
	Dropped   uint64  `json:"dropped_packets"`
	Shed      uint64  `json:"shed_packets"`
	Queued    int     `json:"queued_packets"`
	QueuedMs  float64 `json:"queued_ms"`
}

// Consumers takes a snapshot of every subscription of the stream.
func (s *Stream) Consumers() []ConsumerInfo {
	out := []ConsumerInfo{}
	for _, sub := range s.Subscriptions() {
		n, span := sub.Queued()
		out = append(out, ConsumerInfo{Output: sub.Kind, ID: sub.ID, Delivered: sub.Delivered(),
			Dropped: sub.Dropped(), Shed: sub.Shed(), Queued: n, QueuedMs: float64(span.Microseconds()) / 1000})
	}
	return out
}

// layerInfo is the API's view of one layer.
func (t *Track) layerInfo() LayerInfo {
	bytes := t.bytes.Load()
	w, h := t.Size()
	return LayerInfo{RID: t.RID, Width: w, Height: h, BitrateKbps: t.rate.kbps(bytes),
		FPS: t.fps.perSecond(t.frames.Load()), Packets: t.packets.Load(), Bytes: bytes}
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

// perSecond turns a counter into a rate per second, averaged like kbps.
func (m *rateMeter) perSecond(n uint64) float64 {
	return math.Round(m.kbps(n)*1000/8*10) / 10
}
