package rtc

import (
	"fmt"
	"strings"

	"github.com/pion/webrtc/v3"
)

// sdpFrag is a parsed application/trickle-ice-sdpfrag body (RFC 8840):
// ICE credentials and candidates, per media section.
type sdpFrag struct {
	ufrag, pwd string
	candidates []webrtc.ICECandidateInit
}

// maxFragSize bounds a trickle body: a few dozen candidates fit in 8 KiB.
const maxFragSize = 16 << 10

func parseSDPFrag(body []byte) (*sdpFrag, error) {
	if len(body) > maxFragSize {
		return nil, &OfferError{Msg: fmt.Sprintf("the SDP fragment is %d bytes; at most %d are accepted", len(body), maxFragSize)}
	}
	f := &sdpFrag{}
	var mid *string
	var mlineIndex uint16
	mlines := 0
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, &OfferError{Msg: fmt.Sprintf("the SDP fragment has a malformed line %q", truncate(line, 80))}
		}
		switch {
		case strings.HasPrefix(line, "m="):
			mid, mlineIndex = nil, uint16(mlines)
			mlines++
		case strings.HasPrefix(line, "a=mid:"):
			m := strings.TrimPrefix(line, "a=mid:")
			mid = &m
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=candidate:"):
			c := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a=")}
			if mid != nil {
				m := *mid
				c.SDPMid = &m
			} else {
				idx := mlineIndex
				c.SDPMLineIndex = &idx
			}
			f.candidates = append(f.candidates, c)
		}
	}
	return f, nil
}

// buildSDPFrag writes our ICE credentials and candidates, taken from a full
// local description, as the body of a 200 answer to an ICE restart.
func buildSDPFrag(localSDP string) []byte {
	var b strings.Builder
	var ufrag, pwd string
	var media []string
	var cands = map[string][]string{}
	var cur string
	for _, line := range strings.Split(localSDP, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:") && ufrag == "":
			ufrag = line
		case strings.HasPrefix(line, "a=ice-pwd:") && pwd == "":
			pwd = line
		case strings.HasPrefix(line, "a=mid:"):
			cur = line
			media = append(media, cur)
		case strings.HasPrefix(line, "a=candidate:"):
			// With rtcp-mux only component 1 is used; pion repeats each
			// candidate as component 2, and whip-whep's restart() joins
			// the lines with commas, so it copes with one line only.
			if f := strings.Fields(line); len(f) > 1 && f[1] != "1" {
				continue
			}
			cands[cur] = append(cands[cur], line)
		}
	}
	b.WriteString(ufrag + "\r\n" + pwd + "\r\n")
	// With max-bundle every candidate belongs to the first media section.
	if len(media) > 0 {
		b.WriteString("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" + media[0] + "\r\n")
		for _, c := range cands[media[0]] {
			b.WriteString(c + "\r\n")
		}
		b.WriteString("a=end-of-candidates\r\n")
	}
	return []byte(b.String())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
