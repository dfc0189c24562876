// Package whipclient publishes real, paced media to a WHIP endpoint and
// watches a WHEP endpoint, using pion, so end-to-end tests and load tools can
// act like OBS (publisher) and a browser (viewer) without either.
package whipclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
)

// Content types used by WHIP/WHEP (RFC 9725).
const (
	contentTypeSDP     = "application/sdp"
	contentTypeSDPFrag = "application/trickle-ice-sdpfrag"
)

// deleteTimeout bounds the DELETE sent by Close, which must not depend on a
// caller's (possibly cancelled) context.
const deleteTimeout = 5 * time.Second

// LoopbackSettingEngine returns a SettingEngine that gathers only IPv4 UDP
// host candidates on the loopback interface "lo", without mDNS, and uses short
// ICE timeouts so a vanished peer is noticed within seconds. Tests on one
// machine use it on both ends so ICE never touches a real network.
//
// It also nominates a peer-reflexive pair at once instead of after pion's
// default 1 s. pion adds the answer's candidates asynchronously, after the
// credentials: when the gateway's first connectivity check lands in between
// (about 1 join in 200 on loopback), the agent learns the gateway's host
// address as peer-reflexive, the later host candidate never gets a pair of
// its own, and the join waited a second for nothing better to turn up. On
// loopback there is nothing better.
func LoopbackSettingEngine() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(2*time.Second, 4*time.Second, 500*time.Millisecond)
	se.SetPrflxAcceptanceMinWait(0)
	return se
}

// newAPI builds a pion API from a MediaEngine the caller filled with codecs,
// adding pion's default interceptors (NACK, RTCP reports, TWCC).
func newAPI(m *webrtc.MediaEngine, se *webrtc.SettingEngine) (*webrtc.API, error) {
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("registering default interceptors: %w", err)
	}
	opts := []func(*webrtc.API){webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir)}
	if se != nil {
		opts = append(opts, webrtc.WithSettingEngine(*se))
	}
	return webrtc.NewAPI(opts...), nil
}

// HTTPError is returned when a WHIP/WHEP endpoint answers with an
// unexpected status.
type HTTPError struct {
	Method     string
	URL        string
	StatusCode int
	Body       string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: unexpected status %d: %q", e.Method, e.URL, e.StatusCode, e.Body)
}

// session is the HTTP side of one WHIP or WHEP session.
type session struct {
	client   *http.Client
	token    string
	endpoint *url.URL
	location *url.URL
}

func newSession(endpoint, token string, client *http.Client) (*session, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("parsing endpoint URL %q: %w", endpoint, err)
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &session{client: client, token: token, endpoint: u}, nil
}

// response is what the session needs from an HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
	// url is the URL that answered, after any redirect (RFC 9725 §4.5: a
	// WHIP client follows a 307 from one node to another).
	url *url.URL
}

func (s *session) do(ctx context.Context, method, target, contentType string, body []byte, header http.Header) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", method, target, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sending %s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s %s response: %w", method, target, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data, url: resp.Request.URL}, nil
}

// offer POSTs an SDP offer and returns the answer SDP and ETag; it records
// the resource Location, resolved against the URL that answered (the
// endpoint's, or where a 307 sent the offer: net/http follows it with the
// same body).
func (s *session) offer(ctx context.Context, sdp string) (answer, etag string, err error) {
	resp, err := s.do(ctx, http.MethodPost, s.endpoint.String(), contentTypeSDP, []byte(sdp), nil)
	if err != nil {
		return "", "", err
	}
	if resp.status != http.StatusCreated {
		return "", "", &HTTPError{http.MethodPost, s.endpoint.String(), resp.status, string(resp.body)}
	}
	loc := resp.header.Get("Location")
	if loc == "" {
		return "", "", fmt.Errorf("POST %s: 201 without Location header", s.endpoint)
	}
	// Relative to the endpoint that answered, after any redirect.
	locURL, err := resp.url.Parse(loc)
	if err != nil {
		return "", "", fmt.Errorf("POST %s: parsing Location %q: %w", s.endpoint, loc, err)
	}
	s.location = locURL
	return string(resp.body), resp.header.Get("ETag"), nil
}

// patch sends an SDP fragment to the resource with If-Match: etag and
// returns the response (status 200 or 204).
func (s *session) patch(ctx context.Context, frag, etag string) (*response, error) {
	if s.location == nil {
		return nil, fmt.Errorf("PATCH: no session resource yet")
	}
	header := http.Header{}
	if etag != "" {
		header.Set("If-Match", etag)
	}
	resp, err := s.do(ctx, http.MethodPatch, s.location.String(), contentTypeSDPFrag, []byte(frag), header)
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK && resp.status != http.StatusNoContent {
		return nil, &HTTPError{http.MethodPatch, s.location.String(), resp.status, string(resp.body)}
	}
	return resp, nil
}

// delete ends the session on the server. A missing resource (404) counts as
// already deleted.
func (s *session) delete() error {
	if s.location == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	resp, err := s.do(ctx, http.MethodDelete, s.location.String(), "", nil, nil)
	if err != nil {
		return err
	}
	if resp.status/100 != 2 && resp.status != http.StatusNotFound {
		return &HTTPError{http.MethodDelete, s.location.String(), resp.status, string(resp.body)}
	}
	return nil
}

// waitGathering waits until ICE gathering of pc completes or ctx ends. The
// promise must be taken before SetLocalDescription.
func waitGathering(ctx context.Context, gathered <-chan struct{}) error {
	select {
	case <-gathered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for ICE gathering: %w", ctx.Err())
	}
}

// settleWait bounds how long closeSettled waits for a connection attempt.
const settleWait = 3 * time.Second

// closeSettled closes pc once a connection attempt in flight has ended
// (connected or failed; settleWait at most). pion v3.3.6's
// ICETransport.Stop reads the transport's mux without its lock while
// Start, returning from a Dial that just succeeded, sets it (fixed in
// pion v4, webrtc#2940): a client closed just as ICE connects made the
// race detector fail whichever test closed it. While the connection is
// "connecting", ICE or DTLS is still starting; Start has returned once it
// is connected, and fails or is cancelled otherwise.
func closeSettled(pc *webrtc.PeerConnection) error {
	deadline := time.Now().Add(settleWait)
	for pc.ConnectionState() == webrtc.PeerConnectionStateConnecting && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return pc.Close()
}
