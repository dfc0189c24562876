package rtc

import (
	"fmt"
	"strings"
)

// DefaultMaxCandidates bounds the remote ICE candidates of one session:
// the offer's and every trickled one. Each is an address Reel sends STUN
// checks to, so an unbounded list would let one offer aim Reel's traffic
// at hundreds of hosts. Real clients list a handful.
const DefaultMaxCandidates = 20

// CandidateLimitError refuses an offer or a PATCH that would take a
// session past its remote candidate limit (422).
type CandidateLimitError struct {
	// Count is how many distinct remote candidates the session would have.
	Count, Max int
}

func (e *CandidateLimitError) Error() string {
	return fmt.Sprintf("too many ICE candidates: the session would have %d remote candidates, and at most %d are accepted "+
		"(the offer's and every trickled one count; an ICE restart starts a new count)", e.Count, e.Max)
}

// candidates are the distinct remote candidates of one ICE generation, by
// transport, address and port: pion merges the same candidate repeated in
// every media section, so repeats cost nothing and count once.
type candidates struct {
	max  int // <= 0: no limit
	seen map[string]struct{}
}

func newCandidates(max int) *candidates { return &candidates{max: max, seen: map[string]struct{}{}} }

// add takes cands (the "candidate:..." attribute values) if the set stays
// within its limit; otherwise it takes none of them.
func (cs *candidates) add(cands []string) error {
	var fresh []string
	for _, c := range cands {
		k := candidateKey(c)
		if _, ok := cs.seen[k]; !ok && !contains(fresh, k) {
			fresh = append(fresh, k)
		}
	}
	if n := len(cs.seen) + len(fresh); cs.max > 0 && n > cs.max {
		return &CandidateLimitError{Count: n, Max: cs.max}
	}
	for _, k := range fresh {
		cs.seen[k] = struct{}{}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// candidateKey is what makes a candidate distinct: "candidate:<foundation>
// <component> <transport> <priority> <address> <port> typ ...".
func candidateKey(c string) string {
	f := strings.Fields(strings.TrimPrefix(c, "candidate:"))
	if len(f) < 6 {
		return c
	}
	return strings.ToLower(f[2]) + " " + strings.ToLower(f[4]) + " " + f[5]
}

// sdpCandidates lists the a=candidate values of every media section.
func sdpCandidates(sdp string) []string {
	var out []string
	for _, line := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "a=candidate:"); ok {
			out = append(out, "candidate:"+v)
		}
	}
	return out
}
