package ingest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/testlog"
	"github.com/reel-gateway/reel/internal/whipclient"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// limitsGateway is a WHIP service on loopback with short timeouts, behind
// a minimal POST handler so the pion WHIP client can reach it.
func limitsGateway(t *testing.T, cfg Config) (*live.Hub, *Server, string) {
	t.Helper()
	engine, err := rtc.NewEngine(rtc.Config{UDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	hub := live.NewHub(live.Reject)
	cfg.Logger = testlog.New(t)
	w := New(hub, engine, cfg)
	t.Cleanup(w.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			return
		}
		offer, _ := io.ReadAll(r.Body)
		p, answer, err := w.Publish(r.Context(), "idle", offer, r.RemoteAddr)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		rw.Header().Set("Location", "/whip/idle/"+p.ID)
		rw.Header().Set("ETag", p.ETag())
		rw.Header().Set("Content-Type", "application/sdp")
		rw.WriteHeader(http.StatusCreated)
		rw.Write(answer)
	}))
	t.Cleanup(srv.Close)
	return hub, w, srv.URL + "/whip/idle"
}

// waitGone waits (bounded) until the stream has left the hub.
func waitGone(t *testing.T, hub *live.Hub, name string, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); hub.Get(name) != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stream %q still live after %v", name, within)
		}
	}
}

// TestIdlePublisherEnds: a publisher that stays connected (ICE consent is
// answered) but stops sending media is ended by the idle timeout.
func TestIdlePublisherEnds(t *testing.T) {
	hub, w, url := limitsGateway(t, Config{IdleTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, url, whipclient.PublishOptions{Video: "vp8", Duration: 1500 * time.Millisecond, SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	s := hub.Get("idle")
	if s == nil {
		t.Fatal("not live")
	}
	<-pub.Done() // sending stopped; the peer connection stays up
	waitGone(t, hub, "idle", 15*time.Second)
	if s.Track(live.Video).Packets() == 0 {
		t.Error("no media arrived before the idle timeout")
	}
	if _, err := w.Session("idle", s.Session()); err == nil {
		t.Error("the idle session is still addressable")
	}
}

// TestNeverConnectedPublisherEnds: a POST whose peer never completes ICE
// is cleaned up after the connect timeout and its stream removed.
func TestNeverConnectedPublisherEnds(t *testing.T) {
	hub, w, _ := limitsGateway(t, Config{ConnectTimeout: time.Second})
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(&me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	// The answer is never applied: the peer never connects.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, _, err := w.Publish(ctx, "ghost", []byte(pc.LocalDescription().SDP), "192.0.2.1:9")
	if err != nil {
		t.Fatal(err)
	}
	if hub.Get("ghost") == nil {
		t.Fatal("not live after POST")
	}
	waitGone(t, hub, "ghost", 15*time.Second)
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session not ended")
	}
	if _, err := w.Session("ghost", p.ID); err == nil {
		t.Error("the session is still addressable")
	}
}
