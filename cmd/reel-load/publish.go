package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/internal/whipclient"
)

// opusPT is the payload type whipclient sends Opus with; every other
// payload type it sends is video.
const opusPT = 111

// publisher is one WHIP publisher sending the fixture in a loop, stamping
// every packet's send time into its stream's tables.
type publisher struct {
	name   string
	stamps *streamStamps
	pub    *whipclient.Publisher
}

func startPublisher(ctx context.Context, cfg *config, name string, client *http.Client) (*publisher, error) {
	p := &publisher{name: name, stamps: new(streamStamps)}
	var pace *pacer
	if cfg.pace > 0 {
		pace = newPacer(cfg.pace * cfg.videoRate / 8)
	}
	se := whipclient.LoopbackSettingEngine()
	opts := whipclient.PublishOptions{
		Token:     cfg.token,
		Video:     cfg.video,
		VideoFile: cfg.videoFile,
		Audio:     true,
		Loop:      true,
		// Simulcast layers always answer (whipclient).
		AnswerKeyframeRequests: cfg.answerKeyframes,
		OnPacket: func(pkt *rtp.Packet) {
			video := pkt.PayloadType != opusPT
			if video && pace != nil {
				pace.wait(pkt.MarshalSize())
			}
			p.stamps.table(video).stamp(pkt.SequenceNumber, pkt.Timestamp, now())
		},
		HTTPClient:    client,
		SettingEngine: &se,
	}
	if cfg.simulcast {
		// Three layers of the same 720p picture; the top one is the
		// (padded) -video-file, and pacing covers all three.
		p.stamps.layers = map[string]*stampTable{}
		for _, l := range simulcastLayers(cfg.videoFile) {
			opts.Simulcast = append(opts.Simulcast, l)
			p.stamps.layers[l.RID] = new(stampTable)
		}
		if cfg.pace > 0 {
			pace = newPacer(cfg.pace * (cfg.videoRate + simulcastLowerRate) / 8)
		}
		opts.OnLayerPacket = func(rid string, pkt *rtp.Packet) {
			if pace != nil {
				pace.wait(pkt.MarshalSize())
			}
			p.stamps.layers[rid].stamp(pkt.SequenceNumber, pkt.Timestamp, now())
		}
	}
	if cfg.reports == "capture" {
		opts.Timing.SenderReports = whipclient.SRCapture
	}
	pub, err := whipclient.Publish(ctx, endpoint(cfg.whipURL, name), opts)
	if err != nil {
		return nil, err
	}
	p.pub = pub
	select {
	case <-pub.Connected():
	case <-time.After(15 * time.Second):
		_ = pub.Close()
		return nil, fmt.Errorf("publisher %s did not connect within 15 s", name)
	case <-ctx.Done():
		_ = pub.Close()
		return nil, ctx.Err()
	}
	return p, nil
}

// pacer spreads a publisher's video packets out in time the way OBS (31 and
// later, libdatachannel's PacingHandler) and browsers do: a budget of bytes
// refilled at a fixed rate and spent in bursts of at most paceBurst, so a
// keyframe leaves over tens of milliseconds instead of in one burst.
type pacer struct {
	rate   float64 // bytes per nanosecond
	burst  float64 // bytes
	tokens float64
	last   int64
}

// paceBurst is the longest burst, as libdatachannel's 5 ms send interval.
const paceBurst = 5 * time.Millisecond

func newPacer(bytesPerSecond float64) *pacer {
	r := bytesPerSecond / 1e9
	return &pacer{rate: r, burst: r * float64(paceBurst), tokens: r * float64(paceBurst), last: now()}
}

// wait blocks until n bytes may be sent. Only the video sender calls it.
func (p *pacer) wait(n int) {
	t := now()
	p.tokens = min(p.burst, p.tokens+float64(t-p.last)*p.rate)
	p.last = t
	p.tokens -= float64(n)
	if p.tokens < 0 {
		time.Sleep(time.Duration(-p.tokens / p.rate))
	}
}
