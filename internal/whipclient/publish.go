package whipclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"
)

// PublishOptions configures Publish.
type PublishOptions struct {
	Token     string // sent as Authorization: Bearer
	Video     string // "vp8" | "vp9" | "av1" | "h264" | "h265" | "" (none)
	VideoFile string // fixture path; "" = testdata default for Video
	// VideoFPS is the frame rate of a raw H.264 or H.265 file (which has
	// no timestamps); 0 means 30.
	VideoFPS int
	// H264ProfileLevelID overrides the profile-level-id offered for H.264;
	// "" derives it from the file's SPS (42e01f, 4d001f or 64001f).
	H264ProfileLevelID string
	Audio              bool
	AudioFile          string // Ogg Opus path; "" = testdata/opus.ogg
	// Loop repeats the files until ctx ends or Close is called.
	Loop bool
	// Duration stops sending after this long, looping the files as needed;
	// 0 = one pass of the files (or forever with Loop).
	Duration time.Duration
	// H264SeparateParamSets sends SPS and PPS (and H.265's VPS) as their
	// own single-NAL RTP packets (no STAP-A or aggregation packet), as
	// OBS/libdatachannel does.
	H264SeparateParamSets bool
	// Trickle POSTs the offer before ICE gathering completes and sends the
	// candidates with PATCH application/trickle-ice-sdpfrag (If-Match: ETag).
	// The default sends one offer with all candidates, like OBS.
	Trickle bool
	// AnswerKeyframeRequests answers a PLI or FIR on the video as an
	// encoder does, with a keyframe: the next frame sent is the file's
	// next keyframe (the picture jumps; the timestamps run on). By default
	// a single video track is sent exactly as the file has it, every
	// frame, so tests can compare what was recorded with it; simulcast
	// layers always answer (simulcast.go).
	AnswerKeyframeRequests bool
	// Simulcast sends the video as these encodings, each a file of the
	// Video codec at its own size, with its rid (RFC 8853), as OBS and
	// browsers do; VideoFile is then unused. See DefaultSimulcast.
	Simulcast []SimulcastLayer
	// OnPacket, if set, sees (and may modify) every RTP packet just before it
	// is written, e.g. to add a header extension. It is called from the
	// video and audio send goroutines concurrently.
	OnPacket func(*rtp.Packet)
	// Timing changes how sending relates to capture (burst start, late
	// audio, who writes Sender Reports), for lip-sync tests.
	Timing Timing
	// OnLayerPacket, if set, replaces OnPacket for the packets of a
	// simulcast layer, with the layer's rid.
	OnLayerPacket func(rid string, pkt *rtp.Packet)
	HTTPClient    *http.Client
	SettingEngine *webrtc.SettingEngine // nil = pion defaults
	ICEServers    []webrtc.ICEServer
}

// PublisherStats is a snapshot of what a Publisher sent, per kind.
type PublisherStats struct {
	Video SendStats // all layers together for a simulcast publish
	Audio SendStats
	// Layers is per rid for a simulcast publish.
	Layers map[string]SendStats
}

// Publisher is one WHIP session sending media from files.
type Publisher struct {
	Location string // resolved session URL
	// ETag of the session; updated by RestartICE, so do not read it while
	// RestartICE runs.
	ETag string
	PC   *webrtc.PeerConnection

	http      *session
	senders   []*trackSender
	created   time.Time   // when Publish was called: the capture start with Timing.StartBeforeConnect
	layers    *layerGroup // the simulcast video's layers, nil without
	connected chan struct{}
	// connectedAt is when the connection came up: the capture clock's
	// start for every track (set before connected is closed).
	connectedAt time.Time
	done        chan struct{}
	stop        context.CancelFunc
	sendErr     error // first send error, valid after done is closed
	closeOnce   sync.Once
	closeErr    error
}

// Publish creates a PeerConnection with sendonly tracks for the requested
// media, performs the WHIP exchange with whipURL and starts sending once the
// connection is up. Sending runs until the files are done, Duration elapses,
// ctx ends or Close is called; ctx also bounds the HTTP exchange.
func Publish(ctx context.Context, whipURL string, opts PublishOptions) (*Publisher, error) {
	sources, err := loadSources(opts)
	if err != nil {
		return nil, err
	}
	httpSession, err := newSession(whipURL, opts.Token, opts.HTTPClient)
	if err != nil {
		return nil, err
	}
	p := &Publisher{http: httpSession, connected: make(chan struct{}), done: make(chan struct{}), created: time.Now()}
	if err := p.setupPeerConnection(sources, opts); err != nil {
		return nil, err
	}
	if err := p.negotiate(ctx, opts.Trickle); err != nil {
		_ = closeSettled(p.PC)
		_ = p.http.delete()
		return nil, err
	}
	p.Location = p.http.location.String()
	p.startSending(ctx, opts)
	return p, nil
}

func (p *Publisher) setupPeerConnection(sources []*mediaSource, opts PublishOptions) error {
	m, err := mediaEngine(sources)
	if err != nil {
		return err
	}
	if len(opts.Simulcast) > 0 {
		if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
			return fmt.Errorf("registering the simulcast header extensions: %w", err)
		}
	}
	api, err := newPublisherAPI(m, opts.SettingEngine, opts.Timing.SenderReports)
	if err != nil {
		return err
	}
	p.PC, err = api.NewPeerConnection(webrtc.Configuration{ICEServers: opts.ICEServers})
	if err != nil {
		return fmt.Errorf("creating publisher PeerConnection: %w", err)
	}
	var once sync.Once
	p.PC.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() {
				p.connectedAt = time.Now()
				close(p.connected)
			})
		}
	})
	for _, src := range sources {
		var err error
		if src.kind == "video" && len(opts.Simulcast) > 0 {
			err = p.addSimulcastSenders(src, opts)
		} else {
			err = p.addSender(src, opts.OnPacket, opts.AnswerKeyframeRequests)
		}
		if err != nil {
			_ = p.PC.Close()
			return err
		}
		if src.kind == "audio" {
			p.senders[len(p.senders)-1].sendDelay = opts.Timing.AudioSendDelay
		}
	}
	return nil
}

func (p *Publisher) addSender(src *mediaSource, onPacket func(*rtp.Packet), answerKeyframes bool) error {
	ts, err := newTrackSender(src, onPacket, "")
	if err != nil {
		return err
	}
	if answerKeyframes && src.kind == "video" {
		ts.onPLI = func() { ts.keyframe.Store(true) } // before readRTCP starts
	}
	tr, err := p.PC.AddTransceiverFromTrack(ts.track,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("adding %s transceiver: %w", src.kind, err)
	}
	ts.rtpSender = tr.Sender()
	go ts.readRTCP()
	p.senders = append(p.senders, ts)
	return nil
}

// negotiate runs the WHIP offer/answer, with or without trickle.
func (p *Publisher) negotiate(ctx context.Context, trickle bool) error {
	if trickle {
		return p.negotiateTrickle(ctx)
	}
	offer, err := p.PC.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("creating offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.PC)
	if err := p.PC.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("setting local offer: %w", err)
	}
	if err := waitGathering(ctx, gathered); err != nil {
		return err
	}
	return p.exchange(ctx, p.PC.LocalDescription().SDP)
}

// exchange POSTs the offer and applies the answer.
func (p *Publisher) exchange(ctx context.Context, offer string) error {
	answer, etag, err := p.http.offer(ctx, offer)
	if err != nil {
		return fmt.Errorf("WHIP offer: %w", err)
	}
	p.ETag = etag
	err = p.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	if err != nil {
		return fmt.Errorf("applying WHIP answer: %w", err)
	}
	return nil
}

// negotiateTrickle POSTs the offer without candidates, then PATCHes each
// local candidate and finally end-of-candidates, returning once gathering
// is complete and every PATCH was accepted.
func (p *Publisher) negotiateTrickle(ctx context.Context) error {
	candidates := make(chan *webrtc.ICECandidate, 256)
	p.PC.OnICECandidate(func(c *webrtc.ICECandidate) {
		select { // never block pion; later gatherings (RestartICE) are not trickled
		case candidates <- c:
		default:
		}
	})
	offer, err := p.PC.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("creating offer: %w", err)
	}
	if err := p.PC.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("setting local offer: %w", err)
	}
	if err := p.exchange(ctx, offer.SDP); err != nil {
		return err
	}
	t, err := newTrickler(p.http, p.PC, offer.SDP)
	if err != nil {
		return err
	}
	for {
		select {
		case c := <-candidates:
			if err := t.send(ctx, c, p.ETag); err != nil {
				return err
			}
			if c == nil {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("trickling ICE candidates: %w", ctx.Err())
		}
	}
}

// startSending launches one paced sender per track; they begin once the
// PeerConnection is connected. done closes when all of them have returned.
func (p *Publisher) startSending(ctx context.Context, opts PublishOptions) {
	sendCtx, cancel := context.WithCancel(ctx)
	p.stop = cancel
	var wg sync.WaitGroup
	errs := make([]error, len(p.senders)+1)
	for i, s := range p.senders {
		if s.rid != "" {
			continue // the simulcast layers are sent together, below
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.runSender(sendCtx, s, opts)
		}()
	}
	if p.layers != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[len(errs)-1] = p.layers.run(sendCtx, p.connected, &p.connectedAt, opts)
		}()
	}
	go func() {
		wg.Wait()
		p.sendErr = errors.Join(errs...)
		close(p.done)
	}()
}

func (p *Publisher) runSender(ctx context.Context, s *trackSender, opts PublishOptions) error {
	select {
	case <-p.connected:
	case <-ctx.Done():
		return nil
	}
	// One capture clock for all tracks, as an encoder has: each sender
	// taking its own time.Now() on waking started audio and video apart
	// by however late its goroutine ran (20 ms on a loaded machine), and
	// the Sender Reports faithfully told the gateway so.
	sched := schedule{start: p.connectedAt, loop: opts.Loop || opts.Duration > 0}
	switch {
	case !opts.Timing.CaptureStart.IsZero():
		sched.start, sched.from = opts.Timing.CaptureStart, time.Now()
	case opts.Timing.StartBeforeConnect:
		sched.start = p.created
		hold := time.NewTimer(time.Until(p.created.Add(opts.Timing.BurstAfter)))
		defer hold.Stop()
		select {
		case <-hold.C:
		case <-ctx.Done():
			return nil
		}
	}
	if opts.Timing.SenderReports == SRCapture {
		go p.sendReports(ctx, s, opts.Timing)
	}
	if opts.Duration > 0 {
		sched.until = sched.start.Add(opts.Duration)
		if sched.from.After(sched.start) {
			sched.until = sched.from.Add(opts.Duration)
		}
	}
	return s.run(ctx, sched)
}

// Done is closed when sending has stopped: all samples were sent (no Loop,
// no Duration), Duration elapsed, ctx ended, Close was called, or a write
// failed (see Err).
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Err returns the first error that stopped sending early, once Done is
// closed; nil before that or if sending ended normally.
func (p *Publisher) Err() error {
	select {
	case <-p.done:
		return p.sendErr
	default:
		return nil
	}
}

// Connected is closed once the PeerConnection first reaches "connected".
func (p *Publisher) Connected() <-chan struct{} { return p.connected }

// Stats returns a snapshot of the packets sent and RTCP feedback received.
func (p *Publisher) Stats() PublisherStats {
	var st PublisherStats
	for _, s := range p.senders {
		switch {
		case s.rid != "":
			if st.Layers == nil {
				st.Layers = map[string]SendStats{}
			}
			l := s.counters.snapshot()
			st.Layers[s.rid] = l
			st.Video = st.Video.add(l)
		case s.src.kind == "video":
			st.Video = s.counters.snapshot()
		default:
			st.Audio = s.counters.snapshot()
		}
	}
	return st
}

// Close stops sending, DELETEs the WHIP session and closes the
// PeerConnection. It is safe to call more than once.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.stop()
		<-p.done
		var errs []error
		if err := p.http.delete(); err != nil {
			errs = append(errs, fmt.Errorf("deleting WHIP session: %w", err))
		}
		if p.layers != nil {
			p.layers.stopReading()
		}
		if err := closeSettled(p.PC); err != nil {
			errs = append(errs, fmt.Errorf("closing publisher PeerConnection: %w", err))
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// RestartICE performs an ICE restart as in RFC 9725 section 4.4: it creates
// an offer with new ICE credentials, waits for gathering, PATCHes the
// sdpfrag with If-Match: ETag, applies the credentials and candidates of the
// answer fragment and stores the new ETag.
func (p *Publisher) RestartICE(ctx context.Context) error {
	offer, err := p.PC.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return fmt.Errorf("creating ICE restart offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.PC)
	if err := p.PC.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("setting ICE restart offer: %w", err)
	}
	if err := waitGathering(ctx, gathered); err != nil {
		return err
	}
	local := p.PC.LocalDescription().SDP
	kind, mid, err := firstMedia(local)
	if err != nil {
		return fmt.Errorf("reading ICE restart offer: %w", err)
	}
	ice := parseICE(local)
	ice.end = true
	resp, err := p.http.patch(ctx, buildSDPFrag(kind, mid, ice), p.ETag)
	if err != nil {
		return fmt.Errorf("ICE restart: %w", err)
	}
	return p.applyRestartAnswer(resp)
}

func (p *Publisher) applyRestartAnswer(resp *response) error {
	if resp.status != http.StatusOK {
		return fmt.Errorf("ICE restart: server answered %d without an sdpfrag", resp.status)
	}
	remote := parseICE(string(resp.body))
	if remote.ufrag == "" || remote.pwd == "" {
		return fmt.Errorf("ICE restart: answer fragment lacks ice-ufrag/ice-pwd: %q", resp.body)
	}
	answer, err := replaceICE(p.PC.RemoteDescription().SDP, remote)
	if err != nil {
		return fmt.Errorf("ICE restart: %w", err)
	}
	err = p.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	if err != nil {
		return fmt.Errorf("ICE restart: applying answer: %w", err)
	}
	if etag := resp.header.Get("ETag"); etag != "" {
		p.ETag = etag
	}
	return nil
}
