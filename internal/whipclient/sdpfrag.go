package whipclient

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// iceParams are the ICE attributes carried by a trickle-ice-sdpfrag
// (RFC 8840): credentials and candidate lines ("candidate:..." without "a=").
type iceParams struct {
	ufrag, pwd string
	candidates []string
	end        bool
}

// parseICE reads ICE attributes from an SDP or SDP fragment, taking the first
// ufrag/pwd and every candidate line.
func parseICE(text string) iceParams {
	var p iceParams
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:") && p.ufrag == "":
			p.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:") && p.pwd == "":
			p.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=candidate:"):
			p.candidates = append(p.candidates, strings.TrimPrefix(line, "a="))
		case line == "a=end-of-candidates":
			p.end = true
		}
	}
	return p
}

// firstMedia returns the kind and mid of the first m-section of an SDP, the
// section that carries the candidates of a BUNDLE group.
func firstMedia(desc string) (kind, mid string, err error) {
	var parsed sdp.SessionDescription
	if err := parsed.Unmarshal([]byte(desc)); err != nil {
		return "", "", fmt.Errorf("parsing SDP: %w", err)
	}
	if len(parsed.MediaDescriptions) == 0 {
		return "", "", fmt.Errorf("SDP has no media sections")
	}
	m := parsed.MediaDescriptions[0]
	mid, _ = m.Attribute("mid")
	return m.MediaName.Media, mid, nil
}

// buildSDPFrag writes a trickle-ice-sdpfrag (RFC 8840 / RFC 9725 4.3) with
// the credentials, and the candidates under the first (bundle) m-section.
func buildSDPFrag(kind, mid string, p iceParams) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\n", p.ufrag)
	fmt.Fprintf(&b, "a=ice-pwd:%s\r\n", p.pwd)
	fmt.Fprintf(&b, "m=%s 9 UDP/TLS/RTP/SAVPF 0\r\n", kind)
	fmt.Fprintf(&b, "a=mid:%s\r\n", mid)
	for _, c := range p.candidates {
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	if p.end {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

// replaceICE rewrites a full SDP with new ICE credentials and candidates, as
// needed to apply the answer fragment of an ICE restart: every ufrag/pwd is
// replaced, old candidates are dropped and the new ones go into the first
// m-section.
func replaceICE(desc string, p iceParams) (string, error) {
	var parsed sdp.SessionDescription
	if err := parsed.Unmarshal([]byte(desc)); err != nil {
		return "", fmt.Errorf("parsing SDP to replace ICE attributes: %w", err)
	}
	parsed.Attributes = rewriteICEAttrs(parsed.Attributes, p, false)
	for i, m := range parsed.MediaDescriptions {
		m.Attributes = rewriteICEAttrs(m.Attributes, p, i == 0)
	}
	out, err := parsed.Marshal()
	if err != nil {
		return "", fmt.Errorf("writing SDP with replaced ICE attributes: %w", err)
	}
	return string(out), nil
}

func rewriteICEAttrs(attrs []sdp.Attribute, p iceParams, withCandidates bool) []sdp.Attribute {
	out := make([]sdp.Attribute, 0, len(attrs)+len(p.candidates))
	for _, a := range attrs {
		switch a.Key {
		case "ice-ufrag":
			a.Value = p.ufrag
		case "ice-pwd":
			a.Value = p.pwd
		case "candidate", "end-of-candidates":
			continue
		}
		out = append(out, a)
	}
	if withCandidates {
		for _, c := range p.candidates {
			out = append(out, sdp.NewAttribute("candidate", strings.TrimPrefix(c, "candidate:")))
		}
		if p.end {
			out = append(out, sdp.NewPropertyAttribute("end-of-candidates"))
		}
	}
	return out
}
