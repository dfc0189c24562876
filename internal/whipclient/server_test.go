package whipclient

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// testServer is a minimal in-process WHIP/WHEP gateway built with pion: WHIP
// sessions answer with a recvonly PeerConnection that counts packets and
// relays them to local tracks; WHEP sessions get those tracks. It exists to
// prove that the client really negotiates and sends paced media over
// loopback ICE.
type testServer struct {
	t     *testing.T
	srv   *httptest.Server
	token string // required bearer token, "" = none
	api   *webrtc.API

	mu       sync.Mutex
	nextID   int
	sessions map[string]*serverSession
	relay    map[string]*webrtc.TrackLocalStaticRTP // kind -> track fed by the last WHIP session
	trackUp  chan struct{}                          // closed when the relay has a video track
	patches  []string                               // bodies of accepted PATCHes
	deleted  []string                               // ids of DELETEd sessions

	videoPackets, audioPackets atomic.Uint64
	restarts                   atomic.Uint64
	trickled                   atomic.Uint64 // candidates received by PATCH

	// h264Types records the first byte's NAL type of the first video
	// payloads (to inspect STAP-A vs. single-NAL parameter sets).
	h264Types []byte
}

type serverSession struct {
	id   string
	pc   *webrtc.PeerConnection
	etag string
	whep bool
}

func newTestServer(t *testing.T, token string) *testServer {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(videoCodec(webrtc.MimeTypeH265, h265Fmtp, ptH265), webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := LoopbackSettingEngine()
	s := &testServer{
		t:        t,
		token:    token,
		api:      webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)),
		sessions: map[string]*serverSession{},
		relay:    map[string]*webrtc.TrackLocalStaticRTP{},
		trackUp:  make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip", s.handleWHIP)
	mux.HandleFunc("POST /whep", s.handleWHEP)
	mux.HandleFunc("PATCH /resource/{id}", s.handlePatch)
	mux.HandleFunc("DELETE /resource/{id}", s.handleDelete)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.close)
	return s
}

func (s *testServer) whipURL() string { return s.srv.URL + "/whip" }
func (s *testServer) whepURL() string { return s.srv.URL + "/whep" }

func (s *testServer) close() {
	s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		_ = sess.pc.Close()
	}
}

func (s *testServer) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return false
	}
	return true
}

// answer applies the offer, lets configure add tracks, and returns the
// answer SDP after gathering completes.
func (s *testServer) answer(offer string, configure func(*webrtc.PeerConnection) error) (*webrtc.PeerConnection, string, error) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		_ = pc.Close()
		return nil, "", fmt.Errorf("set remote: %w", err)
	}
	if err := configure(pc); err != nil {
		_ = pc.Close()
		return nil, "", err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		_ = pc.Close()
		return nil, "", fmt.Errorf("create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		_ = pc.Close()
		return nil, "", fmt.Errorf("set local: %w", err)
	}
	<-gathered
	return pc, pc.LocalDescription().SDP, nil
}

func (s *testServer) register(w http.ResponseWriter, pc *webrtc.PeerConnection, answer string, whep bool) {
	s.mu.Lock()
	s.nextID++
	sess := &serverSession{id: fmt.Sprint(s.nextID), pc: pc, etag: fmt.Sprintf(`"e%d-1"`, s.nextID), whep: whep}
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/resource/"+sess.id) // relative, as many servers send it
	w.Header().Set("ETag", sess.etag)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

func (s *testServer) handleWHIP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	offer, _ := io.ReadAll(r.Body)
	pc, answer, err := s.answer(string(offer), func(pc *webrtc.PeerConnection) error {
		pc.OnTrack(s.ingest)
		return nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.register(w, pc, answer, false)
}

// ingest counts and relays one published track, and asks the publisher for
// feedback once so Publisher.Stats can be checked.
func (s *testServer) ingest(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	kind := track.Kind().String()
	local, err := webrtc.NewTrackLocalStaticRTP(track.Codec().RTPCodecCapability, kind, "relay")
	if err != nil {
		s.t.Errorf("relay track: %v", err)
		return
	}
	s.mu.Lock()
	s.relay[kind] = local
	if kind == "video" {
		select {
		case <-s.trackUp:
		default:
			close(s.trackUp)
		}
	}
	s.mu.Unlock()
	counter := &s.audioPackets
	if kind == "video" {
		counter = &s.videoPackets
	}
	for n := 0; ; n++ {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		counter.Add(1)
		if kind == "video" {
			s.recordVideo(pkt.Payload)
			if n == 10 {
				s.sendFeedback(track, pkt.SequenceNumber)
			}
		}
		_ = local.WriteRTP(pkt)
	}
}

func (s *testServer) recordVideo(payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(payload) > 0 && len(s.h264Types) < 200 {
		s.h264Types = append(s.h264Types, payload[0]&0x1f)
	}
}

func (s *testServer) sendFeedback(track *webrtc.TrackRemote, seq uint16) {
	s.mu.Lock()
	var pc *webrtc.PeerConnection
	for _, sess := range s.sessions {
		if !sess.whep {
			pc = sess.pc
		}
	}
	s.mu.Unlock()
	if pc == nil {
		return
	}
	ssrc := uint32(track.SSRC())
	_ = pc.WriteRTCP([]rtcp.Packet{
		&rtcp.PictureLossIndication{MediaSSRC: ssrc},
		&rtcp.FullIntraRequest{MediaSSRC: ssrc, FIR: []rtcp.FIREntry{{SSRC: ssrc, SequenceNumber: 1}}},
		&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: []rtcp.NackPair{{PacketID: seq}}},
	})
}

func (s *testServer) handleWHEP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	select {
	case <-s.trackUp:
	case <-time.After(10 * time.Second):
		http.Error(w, "no stream", http.StatusNotFound)
		return
	}
	offer, _ := io.ReadAll(r.Body)
	pc, answer, err := s.answer(string(offer), s.addRelayTracks)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.register(w, pc, answer, true)
}

func (s *testServer) addRelayTracks(pc *webrtc.PeerConnection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, track := range s.relay {
		sender, err := pc.AddTrack(track)
		if err != nil {
			return fmt.Errorf("add relay track: %w", err)
		}
		go func() {
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	return nil
}

func (s *testServer) session(w http.ResponseWriter, r *http.Request) *serverSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[r.PathValue("id")]
	if sess == nil {
		http.Error(w, "no such session", http.StatusNotFound)
	}
	return sess
}

// handlePatch accepts trickled candidates (204) or performs an ICE restart
// when the fragment carries new credentials (200 + answer fragment).
func (s *testServer) handlePatch(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	sess := s.session(w, r)
	if sess == nil {
		return
	}
	if r.Header.Get("Content-Type") != contentTypeSDPFrag {
		http.Error(w, "bad content type", http.StatusUnsupportedMediaType)
		return
	}
	s.mu.Lock()
	etag := sess.etag
	s.mu.Unlock()
	if r.Header.Get("If-Match") != etag {
		http.Error(w, "etag mismatch", http.StatusPreconditionFailed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.patches = append(s.patches, string(body))
	s.mu.Unlock()
	frag := parseICE(string(body))
	if frag.ufrag != parseICE(sess.pc.RemoteDescription().SDP).ufrag {
		s.restartICE(w, sess, frag)
		return
	}
	for _, c := range frag.candidates {
		if err := sess.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c}); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.trickled.Add(1)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *testServer) restartICE(w http.ResponseWriter, sess *serverSession, frag iceParams) {
	offer, err := replaceICE(sess.pc.RemoteDescription().SDP, frag)
	if err == nil {
		err = sess.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer})
	}
	var ans webrtc.SessionDescription
	if err == nil {
		ans, err = sess.pc.CreateAnswer(nil)
	}
	gathered := webrtc.GatheringCompletePromise(sess.pc)
	if err == nil {
		err = sess.pc.SetLocalDescription(ans)
	}
	if err != nil {
		http.Error(w, "ice restart: "+err.Error(), http.StatusBadRequest)
		return
	}
	<-gathered
	local := sess.pc.LocalDescription().SDP
	kind, mid, err := firstMedia(local)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ice := parseICE(local)
	ice.end = true
	s.restarts.Add(1)
	s.mu.Lock()
	sess.etag = fmt.Sprintf(`"e%s-%d"`, sess.id, s.restarts.Load()+1)
	etag := sess.etag
	s.mu.Unlock()
	w.Header().Set("Content-Type", contentTypeSDPFrag)
	w.Header().Set("ETag", etag)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, buildSDPFrag(kind, mid, ice))
}

// handleDelete closes the session; deleting the WHIP session also closes
// every WHEP session, as a gateway does when the publisher leaves.
func (s *testServer) handleDelete(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	sess := s.session(w, r)
	if sess == nil {
		return
	}
	s.mu.Lock()
	toClose := []*serverSession{sess}
	if !sess.whep {
		for _, other := range s.sessions {
			if other.whep {
				toClose = append(toClose, other)
			}
		}
	}
	for _, c := range toClose {
		delete(s.sessions, c.id)
		s.deleted = append(s.deleted, c.id)
	}
	s.mu.Unlock()
	for _, c := range toClose {
		_ = c.pc.Close()
	}
	w.WriteHeader(http.StatusOK)
}

func (s *testServer) videoTypes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.h264Types...)
}

func (s *testServer) patchBodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.patches...)
}

func (s *testServer) deletedIDs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.deleted, ",")
}
