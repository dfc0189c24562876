package rtc

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/id"
)

// Errors of a PATCH on a WHIP or WHEP session (RFC 9725 §4.3).
var (
	// ErrPreconditionRequired: an ICE restart PATCH had no If-Match (428).
	ErrPreconditionRequired = errors.New("an If-Match header with the session's ETag is required")
	// ErrPreconditionFailed: If-Match names another ICE session (412).
	ErrPreconditionFailed = errors.New("If-Match does not match the session's current ETag")
)

// OfferError is an SDP offer or fragment that cannot be accepted. Its
// message is a sentence for the person who sent it.
type OfferError struct {
	Msg string
	// Unprocessable is set when the SDP parsed but cannot be served (no
	// usable codec, two video tracks), as opposed to malformed.
	Unprocessable bool
}

func (e *OfferError) Error() string { return e.Msg }

func newETag() string { return `"` + id.New()[:16] + `"` }

// ICE is the part of a WHIP or WHEP session that PATCH acts on: the entity
// tag of the current ICE session, trickled candidates and ICE restarts.
type ICE struct {
	pc *webrtc.PeerConnection

	mu    sync.Mutex
	etag  string
	offer string // the remote offer currently applied
	ufrag string // the remote ICE ufrag currently applied
	// cands are the remote candidates of the current ICE generation.
	cands *candidates
}

// newICE starts tracking the ICE session that offer established on pc,
// with the offer's candidates cands.
func newICE(pc *webrtc.PeerConnection, offer string, cands *candidates) *ICE {
	return &ICE{pc: pc, etag: newETag(), offer: offer, ufrag: sdpValue(offer, "a=ice-ufrag:"), cands: cands}
}

// ETag is the entity tag of the current ICE session.
func (s *ICE) ETag() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etag
}

// Patch applies an application/trickle-ice-sdpfrag body. A fragment with
// the current credentials (or none) adds candidates (answer nil); new
// credentials restart ICE and return our new credentials and candidates as
// a fragment with the new entity tag. A restart begins a new generation of
// remote candidates, which replaces the old one, so the candidate limit
// counts afresh; a fragment that would pass it is refused whole
// (*CandidateLimitError).
//
// An ICE restart needs If-Match (428 without it), because two restarts
// could otherwise race. Trickling candidates does not: adding a candidate
// cannot undo anything, and clients such as the whip-whep WHEP client
// trickle without one; an If-Match that is sent must still match (412).
func (s *ICE) Patch(ctx context.Context, ifMatch string, body []byte) (answer []byte, etag string, err error) {
	frag, err := parseSDPFrag(body)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	restart := frag.ufrag != "" && frag.ufrag != s.ufrag
	switch {
	case strings.TrimSpace(ifMatch) == "" && restart:
		return nil, "", ErrPreconditionRequired
	case strings.TrimSpace(ifMatch) != "" && !etagMatches(ifMatch, s.etag):
		return nil, "", ErrPreconditionFailed
	case restart:
		return s.restartLocked(ctx, frag)
	}
	if err := s.cands.add(candidateValues(frag)); err != nil {
		return nil, "", err
	}
	for _, c := range frag.candidates {
		if err := s.pc.AddICECandidate(c); err != nil {
			return nil, "", &OfferError{Msg: fmt.Sprintf("the ICE candidate %q cannot be used: %v", truncate(c.Candidate, 80), err)}
		}
	}
	return nil, s.etag, nil
}

var (
	ufragLine = regexp.MustCompile(`(?m)^a=ice-ufrag:.*\r?$`)
	pwdLine   = regexp.MustCompile(`(?m)^a=ice-pwd:.*\r?$`)
	candLine  = regexp.MustCompile(`(?m)^a=(candidate:.*|end-of-candidates)\r?\n`)
)

// restartLocked replays the original offer with the new credentials, which
// is how pion, as the answering side, learns of an ICE restart.
func (s *ICE) restartLocked(ctx context.Context, frag *sdpFrag) ([]byte, string, error) {
	if frag.pwd == "" {
		return nil, "", &OfferError{Msg: "an ICE restart fragment must carry both a=ice-ufrag and a=ice-pwd"}
	}
	cands := newCandidates(s.cands.max)
	if err := cands.add(candidateValues(frag)); err != nil {
		return nil, "", err
	}
	// Literal: the client's credentials are text, not a template ("$0"
	// must stay "$0").
	offer := ufragLine.ReplaceAllLiteralString(s.offer, "a=ice-ufrag:"+frag.ufrag+"\r")
	offer = pwdLine.ReplaceAllLiteralString(offer, "a=ice-pwd:"+frag.pwd+"\r")
	offer = candLine.ReplaceAllLiteralString(offer, "")
	oldLocalUfrag := sdpValue(s.pc.LocalDescription().SDP, "a=ice-ufrag:")
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return nil, "", &OfferError{Msg: fmt.Sprintf("the ICE restart could not be applied: %v", err)}
	}
	answer, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return nil, "", fmt.Errorf("creating ICE restart answer: %w", err)
	}
	if err := s.pc.SetLocalDescription(answer); err != nil {
		return nil, "", fmt.Errorf("applying ICE restart answer: %w", err)
	}
	for _, c := range frag.candidates {
		_ = s.pc.AddICECandidate(c) // a stale candidate must not fail the restart
	}
	local, err := waitRestartGathered(ctx, s.pc, oldLocalUfrag)
	if err != nil {
		return nil, "", err
	}
	s.offer, s.ufrag, s.etag, s.cands = offer, frag.ufrag, newETag(), cands
	return buildSDPFrag(local), s.etag, nil
}

// candidateValues are a fragment's candidates as attribute values.
func candidateValues(f *sdpFrag) []string {
	out := make([]string, len(f.candidates))
	for i, c := range f.candidates {
		out[i] = c.Candidate
	}
	return out
}

// waitRestartGathered waits until the local description carries new
// credentials and its candidates; with the shared UDP mux that is quick.
func waitRestartGathered(ctx context.Context, pc *webrtc.PeerConnection, oldUfrag string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		if ld := pc.LocalDescription(); ld != nil && pc.ICEGatheringState() == webrtc.ICEGatheringStateComplete &&
			sdpValue(ld.SDP, "a=ice-ufrag:") != oldUfrag && strings.Contains(ld.SDP, "a=candidate:") {
			return ld.SDP, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("gathering candidates after ICE restart: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// etagMatches applies If-Match's strong comparison (RFC 9110 §13.1.1);
// "*" matches any current session.
func etagMatches(ifMatch, etag string) bool {
	for _, t := range strings.Split(ifMatch, ",") {
		if t = strings.TrimSpace(t); t == "*" || t == etag {
			return true
		}
	}
	return false
}

// sdpValue returns the value of the first line starting with prefix.
func sdpValue(sdp, prefix string) string {
	for _, line := range strings.Split(sdp, "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(strings.TrimPrefix(line, prefix))
		}
	}
	return ""
}
