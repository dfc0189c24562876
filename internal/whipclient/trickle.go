package whipclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/pion/webrtc/v3"
)

// trickler PATCHes local ICE candidates to a session (RFC 9725 4.3.1) and
// adds any candidates the server returns in a 200 answer fragment.
type trickler struct {
	http      *session
	pc        *webrtc.PeerConnection
	kind, mid string
	ice       iceParams
}

func newTrickler(s *session, pc *webrtc.PeerConnection, offer string) (*trickler, error) {
	kind, mid, err := firstMedia(offer)
	if err != nil {
		return nil, fmt.Errorf("reading offer for trickle ICE: %w", err)
	}
	ice := parseICE(offer)
	return &trickler{http: s, pc: pc, kind: kind, mid: mid, ice: iceParams{ufrag: ice.ufrag, pwd: ice.pwd}}, nil
}

// send PATCHes one candidate, or end-of-candidates when c is nil.
func (t *trickler) send(ctx context.Context, c *webrtc.ICECandidate, etag string) error {
	frag := t.ice
	if c == nil {
		frag.end = true
	} else {
		frag.candidates = []string{c.ToJSON().Candidate}
	}
	resp, err := t.http.patch(ctx, buildSDPFrag(t.kind, t.mid, frag), etag)
	if err != nil {
		return fmt.Errorf("trickling ICE candidate: %w", err)
	}
	if resp.status != http.StatusOK {
		return nil
	}
	for _, cand := range parseICE(string(resp.body)).candidates {
		if err := t.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: cand, SDPMid: &t.mid}); err != nil {
			return fmt.Errorf("adding server ICE candidate %q: %w", cand, err)
		}
	}
	return nil
}
