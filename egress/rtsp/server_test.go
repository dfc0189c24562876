package rtsp

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/textproto"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/live"
)

func TestUnknownStreamIs404(t *testing.T) {
	hub := live.NewHub(live.Reject)
	s := startServer(t, hub, false)
	_, err := play(t, streamURL(s, "nobody"), gortsplib.TransportTCP)
	if code := statusCode(err); code != base.StatusNotFound {
		t.Fatalf("DESCRIBE of a stream that is not live: %v (status %d), want 404", err, code)
	}
}

func TestEveryCodecIsDescribedAndForwarded(t *testing.T) {
	for _, codec := range []live.Codec{live.H264, live.H265, live.VP8, live.VP9, live.AV1} {
		t.Run(string(codec), func(t *testing.T) {
			hub := live.NewHub(live.Reject)
			publish(t, hub, "cam", hubtest.Source{Video: codec, Audio: true, Loop: true})
			s := startServer(t, hub, false)
			r, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
			if err != nil {
				t.Fatal(err)
			}
			var video, audio format.Format
			for _, m := range r.desc.Medias {
				switch m.Type {
				case "video":
					video = m.Formats[0]
				case "audio":
					audio = m.Formats[0]
				}
			}
			if video == nil || video.Codec() != string(codec) {
				t.Errorf("video format %v, want %s", video, codec)
			}
			if h, ok := video.(*format.H264); ok {
				if sps, pps := h.SafeParams(); sps == nil || pps == nil || h.PacketizationMode != 1 {
					t.Errorf("H.264 format lacks parameter sets or packetization mode: %+v", h)
				}
			}
			if h, ok := video.(*format.H265); ok {
				if vps, sps, pps := h.SafeParams(); vps == nil || sps == nil || pps == nil {
					t.Errorf("H.265 format lacks parameter sets: %+v", h)
				}
			}
			if o, ok := audio.(*format.Opus); !ok || o.ClockRate() != 48000 || o.ChannelCount != 2 {
				t.Errorf("audio format %#v, want Opus 48000/2", audio)
			}
			for _, m := range r.desc.Medias {
				if pt := m.Formats[0].PayloadType(); pt < 96 || pt > 127 {
					t.Errorf("%s declared with static payload type %d", m.Formats[0].Codec(), pt)
				}
			}
			eventually(t, "packets at the reader", func() bool { return r.packets.Load() > 50 })
		})
	}
}

// TestForwardingRewritesHeader publishes hand-made packets: a payload type
// below 96, as Chrome uses for AV1, and a header extension.
func TestForwardingRewritesHeader(t *testing.T) {
	hub := live.NewHub(live.Reject)
	track := &live.Track{Kind: live.Video, Codec: live.VP8, PayloadType: 45, ClockRate: 90000}
	src := publishTrack(t, hub, "cam", track)
	s := startServer(t, hub, false)
	r, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	if pt := r.desc.Medias[0].Formats[0].PayloadType(); pt != 96 {
		t.Fatalf("declared payload type %d, want 96", pt)
	}

	in := rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 45, SequenceNumber: 1000, Timestamp: 123456, SSRC: 42, Marker: true},
		Payload: []byte{0x10, 0x00, 0x9d, 0x01, 0x2a},
	}
	if err := in.SetExtension(3, []byte{0xaa, 0xbb}); err != nil {
		t.Fatal(err)
	}
	raw, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	src.WriteSenderReport(track, time.Now(), 123456, time.Now()) // the stream's clock settles
	// Keep sending: the reader may still be settling when the first goes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_ = src.WriteRTP(track, raw, time.Now())
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	eventually(t, "a forwarded packet", func() bool { return r.last.Load() != nil })
	got := r.last.Load()
	if got.PayloadType != 96 || got.Extension || len(got.Extensions) != 0 {
		t.Errorf("header: payload type %d, extension %v %v; want 96 and none", got.PayloadType, got.Extension, got.Extensions)
	}
	if got.SequenceNumber != 1000 || got.Timestamp != 123456 || !got.Marker || !bytes.Equal(got.Payload, in.Payload) {
		t.Errorf("packet changed: %+v", got)
	}
}

// A browser's padding-only probes never reach RTSP readers, and the
// packets around them arrive numbered without a gap.
func TestPaddingProbesAreLeftOut(t *testing.T) {
	hub := live.NewHub(live.Reject)
	track := &live.Track{Kind: live.Video, Codec: live.VP8, PayloadType: 96, ClockRate: 90000}
	src := publishTrack(t, hub, "cam", track)
	s := startServer(t, hub, false)
	r, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}

	// The publisher's first Sender Report: the stream's clock settles and
	// RTSP forwards from the first packet on.
	src.WriteSenderReport(track, time.Now(), 0, time.Now())
	// Media with every third packet a probe: 4 bytes of padding, no payload.
	const sent = 300
	for i := range sent {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(65400 + i), Timestamp: uint32(i * 3000), SSRC: 7}}
		if i%3 == 1 {
			p.Padding, p.PaddingSize = true, 4
		} else {
			p.Payload = []byte{0x10, 0x00, 0x9d, 0x01, 0x2a}
		}
		raw, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := src.WriteRTP(track, raw, time.Now()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // spread them like a publisher would
	}
	const media = sent - sent/3
	eventually(t, "the media packets", func() bool { return r.packets.Load() >= media })
	seqs, empty := r.received()
	if empty > 0 || len(seqs) != media {
		t.Fatalf("reader got %d packets, %d of them empty; want %d media packets", len(seqs), empty, media)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequence jumps from %d to %d", seqs[i-1], seqs[i])
		}
	}
}

func TestManyReaders(t *testing.T) {
	hub := live.NewHub(live.Reject)
	pub, _ := publish(t, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	s := startServer(t, hub, false)

	const n = 20
	readers := playMany(t, streamURL(s, "cam"), gortsplib.TransportTCP, n)
	if got := s.Readers("cam"); got != n {
		t.Errorf("Readers = %d, want %d", got, n)
	}
	// One hub subscription serves all of them.
	rtspSubs := 0
	for _, sub := range pub.Stream.Subscriptions() {
		if sub.Kind == "rtsp" {
			rtspSubs++
		}
	}
	if rtspSubs != 1 {
		t.Errorf("%d rtsp subscriptions on the hub stream, want 1", rtspSubs)
	}

	for _, r := range readers[:n/2] {
		r.c.Close()
	}
	eventually(t, "Readers drops as readers leave", func() bool { return s.Readers("cam") == n-n/2 })
}

func TestPublisherLeavingEndsReaders(t *testing.T) {
	base := runtime.NumGoroutine()
	hub := live.NewHub(live.Reject)
	s := startServer(t, hub, true)
	pub, stop := publish(t, hub, "cam", hubtest.Source{Video: live.VP8, Audio: true, Loop: true})

	var readers []*reader
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		r, err := play(t, streamURL(s, "cam"), tr)
		if err != nil {
			t.Fatalf("%v reader: %v", tr, err)
		}
		readers = append(readers, r)
	}
	eventually(t, "packets at both readers", func() bool {
		return readers[0].packets.Load() > 0 && readers[1].packets.Load() > 0
	})

	stop()
	<-pub.Done()
	for i, r := range readers {
		select {
		case err := <-r.done:
			t.Logf("reader %d ended: %v", i, err)
		case <-time.After(wait):
			t.Fatalf("reader %d still connected after the publisher left", i)
		}
	}
	eventually(t, "the stream is unbound", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.streams) == 0 && len(s.sessions) == 0
	})
	if got := s.Readers("cam"); got != 0 {
		t.Errorf("Readers = %d after the publisher left", got)
	}

	for _, r := range readers {
		r.c.Close()
	}
	s.Close()
	s.Close() // safe twice
	goroutinesSettle(t, base)
}

func TestRepublishedStreamIsServedAgain(t *testing.T) {
	hub := live.NewHub(live.Reject)
	s := startServer(t, hub, false)
	for round := range 2 {
		_, stop := publish(t, hub, "cam", hubtest.Source{Video: live.H264, Loop: true})
		r, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		eventually(t, "packets", func() bool { return r.packets.Load() > 0 })
		stop()
		select {
		case <-r.done:
		case <-time.After(wait):
			t.Fatalf("round %d: reader not disconnected", round)
		}
	}
}

func TestCloseBeforeStart(t *testing.T) {
	s, err := New(Config{}, live.NewHub(live.Reject))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if err := s.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestNewRejectsHalfUDP(t *testing.T) {
	if _, err := New(Config{UDPRTPAddr: ":8000"}, live.NewHub(live.Reject)); err == nil {
		t.Error("New accepted an RTP address without an RTCP one")
	}
}

func TestNewRejectsBadMulticast(t *testing.T) {
	for name, cfg := range map[string]Config{
		"range":         {MulticastIPRange: "224.1.0.0", MulticastRTPPort: 8002, MulticastRTCPPort: 8003},
		"odd RTP port":  {MulticastIPRange: "224.1.0.0/16", MulticastRTPPort: 8003, MulticastRTCPPort: 8004},
		"RTCP not next": {MulticastIPRange: "224.1.0.0/16", MulticastRTPPort: 8002, MulticastRTCPPort: 8005},
		"no ports":      {MulticastIPRange: "224.1.0.0/16"},
	} {
		if _, err := New(cfg, live.NewHub(live.Reject)); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestAuth(t *testing.T) {
	hub := live.NewHub(live.Reject)
	publish(t, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	publish(t, hub, "lobby", hubtest.Source{Video: live.VP8, Audio: true, Loop: true})
	s := startServer(t, hub, false, "other", "s3cret", "lobby=lobbykey")

	t.Run("challenge", func(t *testing.T) {
		status, header := rawDescribe(t, s.Addr(), "rtsp://"+s.Addr()+"/cam", "")
		if status != 401 || !strings.HasPrefix(header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("got %d, WWW-Authenticate %q; want 401 with a Basic challenge", status, header.Get("WWW-Authenticate"))
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		_, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
		if code := statusCode(err); code != base.StatusUnauthorized {
			t.Errorf("got %v, want 401", err)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		_, err := play(t, "rtsp://viewer:nope@"+s.Addr()+"/cam", gortsplib.TransportTCP)
		if code := statusCode(err); code != base.StatusUnauthorized {
			t.Errorf("got %v, want 401", err)
		}
		_, err = play(t, streamURL(s, "cam")+"?token=nope", gortsplib.TransportTCP)
		if code := statusCode(err); code != base.StatusUnauthorized {
			t.Errorf("query: got %v, want 401", err)
		}
	})
	t.Run("token of another stream", func(t *testing.T) {
		_, err := play(t, "rtsp://x:lobbykey@"+s.Addr()+"/cam", gortsplib.TransportTCP)
		if code := statusCode(err); code != base.StatusUnauthorized {
			t.Errorf("got %v, want 401", err)
		}
	})
	for name, url := range map[string]string{
		"basic":           "rtsp://anyone:s3cret@" + s.Addr() + "/cam",
		"query":           streamURL(s, "cam") + "?token=s3cret",
		"second token":    "rtsp://x:other@" + s.Addr() + "/cam",
		"unknown + token": "rtsp://x:s3cret@" + s.Addr() + "/nobody",
		"stream's token":  "rtsp://x:lobbykey@" + s.Addr() + "/lobby",
	} {
		t.Run(name, func(t *testing.T) {
			r, err := play(t, url, gortsplib.TransportTCP)
			if name == "unknown + token" {
				if code := statusCode(err); code != base.StatusNotFound {
					t.Errorf("got %v, want 404", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "packets", func() bool { return r.packets.Load() > 0 })
		})
	}
}

// rawDescribe sends one DESCRIBE by hand and returns the status and headers.
func rawDescribe(t *testing.T, addr, url, authorization string) (int, textproto.MIMEHeader) {
	t.Helper()
	req := "DESCRIBE " + url + " RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n"
	if authorization != "" {
		req += "Authorization: " + authorization + "\r\n"
	}
	return rawRequest(t, addr, req)
}

// rawSetup sends a first SETUP of url's first track by hand.
func rawSetup(t *testing.T, addr, url string) (int, textproto.MIMEHeader) {
	t.Helper()
	return rawRequest(t, addr, "SETUP "+url+"/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n"+
		"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
}

// rawRequest sends the request head req (without the final empty line)
// on a new connection and returns the response's status and headers.
func rawRequest(t *testing.T, addr, req string) (int, textproto.MIMEHeader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	tp := textproto.NewReader(bufio.NewReader(conn))
	line, err := tp.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	var status int
	if _, err := fmt.Sscanf(line, "RTSP/1.0 %d", &status); err != nil {
		t.Fatalf("status line %q: %v", line, err)
	}
	header, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	return status, header
}

func TestReaderJoiningRequestsKeyframe(t *testing.T) {
	hub := live.NewHub(live.Reject)
	pub, _ := publish(t, hub, "cam", hubtest.Source{Video: live.H264, Loop: true})
	s := startServer(t, hub, false)

	first, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "packets", func() bool { return first.packets.Load() > 0 })
	// The hub grants one request per 500 ms; let that window pass so the
	// next request can only come from the second reader's PLAY.
	time.Sleep(600 * time.Millisecond)
	before := pub.KeyframeRequests.Load()
	if _, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a keyframe request", func() bool { return pub.KeyframeRequests.Load() > before })
}

// TestDescribeWaitsForParams: a DESCRIBE that arrives before an H.264 or
// H.265 publisher sent its parameter sets asks for a keyframe and answers
// once they come, with them in the SDP.
func TestDescribeWaitsForParams(t *testing.T) {
	t.Run("H264", func(t *testing.T) {
		sps, pps := fixtureParams(t)
		track := &live.Track{Kind: live.Video, Codec: live.H264, PayloadType: 102, ClockRate: 90000,
			Fmtp: "packetization-mode=1;profile-level-id=42e01f"}
		// The publisher answers the request with a STAP-A carrying both.
		payload := append([]byte{24, 0, byte(len(sps))}, sps...)
		payload = append(payload, 0, byte(len(pps)))
		payload = append(payload, pps...)
		f := describeAfterKeyframeRequest(t, track, payload)
		h, ok := f.(*format.H264)
		if !ok {
			t.Fatalf("format %T, want H264", f)
		}
		if gotSPS, gotPPS := h.SafeParams(); !bytes.Equal(gotSPS, sps) || !bytes.Equal(gotPPS, pps) {
			t.Errorf("SDP parameter sets %x %x, want %x %x", gotSPS, gotPPS, sps, pps)
		}
	})
	t.Run("H265", func(t *testing.T) {
		vps, sps, pps := fixtureH265Params(t)
		track := &live.Track{Kind: live.Video, Codec: live.H265, PayloadType: 104, ClockRate: 90000,
			Fmtp: "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"}
		// The publisher answers with an aggregation packet (RFC 7798 4.4.2:
		// type 48, TID 1) carrying all three.
		payload := []byte{48 << 1, 1}
		for _, nal := range [][]byte{vps, sps, pps} {
			payload = append(payload, byte(len(nal)>>8), byte(len(nal)))
			payload = append(payload, nal...)
		}
		f := describeAfterKeyframeRequest(t, track, payload)
		h, ok := f.(*format.H265)
		if !ok {
			t.Fatalf("format %T, want H265", f)
		}
		gotVPS, gotSPS, gotPPS := h.SafeParams()
		if !bytes.Equal(gotVPS, vps) || !bytes.Equal(gotSPS, sps) || !bytes.Equal(gotPPS, pps) {
			t.Errorf("SDP parameter sets %x %x %x, want %x %x %x", gotVPS, gotSPS, gotPPS, vps, sps, pps)
		}
	})
}

// describeAfterKeyframeRequest publishes track, whose publisher answers
// the first keyframe request with one packet carrying payload, and returns
// the video format a DESCRIBE sent before that request gets.
func describeAfterKeyframeRequest(t *testing.T, track *live.Track, payload []byte) format.Format {
	t.Helper()
	hub := live.NewHub(live.Reject)
	var requests atomic.Int64
	src, err := hub.Publish("cam", live.PublishSpec{Tracks: []*live.Track{track},
		RequestKeyframe: func() { requests.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s := startServer(t, hub, false)

	go func() {
		for requests.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		raw, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: track.PayloadType, SequenceNumber: 1},
			Payload: payload}).Marshal()
		_ = src.WriteRTP(track, raw, time.Now())
	}()

	u, _ := base.ParseURL(streamURL(s, "cam"))
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Medias[0].Formats[0]
}

// fixtureParams returns the SPS and PPS of testdata/h264.h264.
func fixtureParams(t *testing.T) (sps, pps []byte) {
	t.Helper()
	samples, err := testmedia.ReadH264(filepath.Join(testmedia.Dir(), "h264.h264"), 30)
	if err != nil {
		t.Fatal(err)
	}
	for _, nal := range testmedia.SplitAnnexB(samples[0].Data) {
		switch nal[0] & 0x1f {
		case 7:
			sps = nal
		case 8:
			pps = nal
		}
	}
	if sps == nil || pps == nil {
		t.Fatal("no SPS/PPS in the first access unit of h264.h264")
	}
	return sps, pps
}

// fixtureH265Params returns the VPS, SPS and PPS of testdata/h265.h265.
func fixtureH265Params(t *testing.T) (vps, sps, pps []byte) {
	t.Helper()
	samples, err := testmedia.ReadH265(filepath.Join(testmedia.Dir(), "h265.h265"), 30)
	if err != nil {
		t.Fatal(err)
	}
	for _, nal := range testmedia.SplitAnnexB(samples[0].Data) {
		switch testmedia.H265Type(nal) {
		case 32:
			vps = nal
		case 33:
			sps = nal
		case 34:
			pps = nal
		}
	}
	if vps == nil || sps == nil || pps == nil {
		t.Fatal("no VPS/SPS/PPS in the first access unit of h265.h265")
	}
	return vps, sps, pps
}

func TestIdleStreamIsUnbound(t *testing.T) {
	hub := live.NewHub(live.Reject)
	pub, _ := publish(t, hub, "cam", hubtest.Source{Video: live.VP8, Loop: true})
	s := startServer(t, hub, false)
	s.mu.Lock()
	s.idleTimeout = 200 * time.Millisecond // before any stream exists
	s.mu.Unlock()

	r, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "packets", func() bool { return r.packets.Load() > 0 })
	time.Sleep(400 * time.Millisecond) // longer than idleTimeout: a reader keeps it
	if s.Readers("cam") != 1 {
		t.Fatal("the stream was unbound while read")
	}
	r.c.Close()
	eventually(t, "the idle stream is unbound from the hub", func() bool {
		for _, sub := range pub.Stream.Subscriptions() {
			if sub.Kind == "rtsp" {
				return false
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.streams) == 0
	})
	// And a new reader binds it again.
	r2, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "packets after rebinding", func() bool { return r2.packets.Load() > 0 })
}

// TestDescribeWithoutH264Params: when SPS and PPS never come, DESCRIBE still
// answers after its bounded wait; players then find them in-band.
func TestDescribeWithoutH264Params(t *testing.T) {
	hub := live.NewHub(live.Reject)
	track := &live.Track{Kind: live.Video, Codec: live.H264, PayloadType: 102, ClockRate: 90000,
		Fmtp: "packetization-mode=1"}
	src, err := hub.Publish("cam", live.PublishSpec{Tracks: []*live.Track{track}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s := startServer(t, hub, false)
	status, _ := rawDescribe(t, s.Addr(), streamURL(s, "cam"), "")
	if status != 200 {
		t.Fatalf("DESCRIBE: %d, want 200", status)
	}
}

// Readers from one address that SETUP at the same time: gortsplib v4.16.2
// reads each UDP reader's media map from the others' first SETUP while
// that reader may still be adding to it, a fatal error in Go. The setup
// gate (setupgate.go) keeps such SETUPs apart; -race catches a regression.
func TestConcurrentUDPReadersFromOneAddress(t *testing.T) {
	hub := live.NewHub(live.Reject)
	publish(t, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	s := startServer(t, hub, true)

	playMany(t, streamURL(s, "cam"), gortsplib.TransportUDP, 40)
}

// limitErr is a refusal that says when to retry, like the gateway's.
type limitErr struct{}

func (limitErr) Error() string             { return "this stream is at its limit of 2 viewers" }
func (limitErr) RetryAfter() time.Duration { return 7 * time.Second }

// admitGate lets everyone read and admits with admit.
type admitGate struct {
	admit func(access.Request) (func(), error)
}

func (admitGate) Authorize(access.Request) error           { return nil }
func (g admitGate) Admit(r access.Request) (func(), error) { return g.admit(r) }

// Readers take a viewer slot from Config.Gate at their first SETUP, one per
// session however many medias it sets up, and give it back when they leave;
// a reader refused gets 503 with Retry-After.
func TestReadersAreAdmitted(t *testing.T) {
	hub := live.NewHub(live.Reject)
	publish(t, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	var mu sync.Mutex
	admitted, released := 0, 0
	s := startServerWith(t, hub, func(cfg *Config) {
		cfg.Gate = admitGate{func(r access.Request) (func(), error) {
			mu.Lock()
			defer mu.Unlock()
			if r.Addr != "127.0.0.1" || r.Stream != "cam" || r.Action != access.Read || r.Protocol != access.RTSP {
				t.Errorf("Admit(%+v)", r)
			}
			if admitted-released >= 2 {
				return nil, limitErr{}
			}
			admitted++
			return func() { mu.Lock(); released++; mu.Unlock() }, nil
		}}
	})
	counts := func() (int, int) { mu.Lock(); defer mu.Unlock(); return admitted, released }

	a, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP); err != nil {
		t.Fatal(err)
	}
	if got, _ := counts(); got != 2 {
		t.Fatalf("%d admissions for 2 readers of 2 medias each, want 2", got)
	}
	_, err = play(t, streamURL(s, "cam"), gortsplib.TransportTCP)
	if code := statusCode(err); code != base.StatusServiceUnavailable {
		t.Fatalf("third reader: %v, want 503", err)
	}
	status, header := rawSetup(t, s.Addr(), streamURL(s, "cam"))
	if status != 503 || header.Get("Retry-After") != "7" {
		t.Errorf("raw SETUP: %d, Retry-After %q; want 503 and 7", status, header.Get("Retry-After"))
	}
	a.c.Close()
	eventually(t, "the slot comes back", func() bool { _, r := counts(); return r == 1 })
	if _, err := play(t, streamURL(s, "cam"), gortsplib.TransportTCP); err != nil {
		t.Fatalf("after a reader left: %v", err)
	}
}

// Wrong credentials are throttled per address (access.Limits.AuthFailures):
// once an address has used them up, RTSP answers 503 with Retry-After
// (RTSP has no 429), even to a good token, and closes the connection.
func TestWrongCredentialsThrottled(t *testing.T) {
	hub := live.NewHub(live.Reject)
	publish(t, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	gate, err := access.New(access.Config{ReadTokens: []string{"s3cret"}},
		access.Limits{AuthFailures: 3, AuthFailureRefill: time.Hour}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s := startServerWith(t, hub, func(cfg *Config) { cfg.Gate = gate })
	basic := func(pass string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+pass)) }
	for i := range 3 {
		if status, _ := rawDescribe(t, s.Addr(), streamURL(s, "cam"), basic("nope")); status != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i, status)
		}
	}
	for _, pass := range []string{"nope", "s3cret"} {
		status, header := rawDescribe(t, s.Addr(), streamURL(s, "cam"), basic(pass))
		if ra, _ := strconv.Atoi(header.Get("Retry-After")); status != 503 || ra < 1 {
			t.Errorf("token %q after 3 wrong ones: %d, Retry-After %q; want 503 with Retry-After", pass, status, header.Get("Retry-After"))
		}
	}
	// Asking without credentials is not a failure, and still challenges.
	if status, header := rawDescribe(t, s.Addr(), streamURL(s, "cam"), ""); status != 401 || header.Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d %q, want a 401 challenge", status, header.Get("WWW-Authenticate"))
	}
}

// A grouped name, {meeting}/{participant}, plays at
// rtsp://host/{meeting}/{participant}, over TCP and UDP.
func TestGroupedName(t *testing.T) {
	hub := live.NewHub(live.Reject)
	publish(t, hub, "board-42/alice", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	s := startServer(t, hub, true)
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		r, err := play(t, streamURL(s, "board-42/alice"), tr)
		if err != nil {
			t.Fatalf("%v: %v", tr, err)
		}
		eventually(t, "packets", func() bool { return r.packets.Load() > 10 })
	}
	if _, err := play(t, streamURL(s, "board-42/bob"), gortsplib.TransportTCP); statusCode(err) != base.StatusNotFound {
		t.Errorf("another participant: %v, want 404", err)
	}
}
