package rtc

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/live"
)

// Simulcast offers (RFC 8853): a video section lists the encodings it will
// send as rids (a=rid:<id> send, RFC 8851) and their order in
// a=simulcast:send. Each encoding arrives as its own RTP stream whose
// packets carry the rid in the RTP stream id header extension (RFC 8852),
// and pion fires OnTrack once per rid. Answering needs those header
// extensions registered, or browsers refuse the answer ("negotiates
// simulcast but does not negotiate the RID RTP header extension").

// offeredRIDs returns the rids a section will send, in a=simulcast order
// (or a=rid order without one), the first alternative of each
// ("a=simulcast:send 1,2;3" sends 1 or 2, and 3), without the paused mark
// "~". It returns nil for a section that is not simulcast.
func offeredRIDs(md *sdp.MediaDescription) ([]string, error) {
	var ridLines []string
	simulcast := ""
	for _, a := range md.Attributes {
		switch a.Key {
		case "rid":
			id, dir, _ := strings.Cut(a.Value, " ")
			if dir, _, _ = strings.Cut(dir, " "); dir == "send" {
				ridLines = append(ridLines, id)
			}
		case "simulcast":
			simulcast = a.Value
		}
	}
	if len(ridLines) == 0 {
		return nil, nil
	}
	var rids []string
	if send := simulcastSend(simulcast); send != "" {
		for _, group := range strings.Split(send, ";") {
			first, _, _ := strings.Cut(group, ",")
			if first = strings.TrimPrefix(strings.TrimSpace(first), "~"); first != "" {
				rids = append(rids, first)
			}
		}
	} else {
		rids = ridLines
	}
	for _, rid := range rids {
		if !live.ValidLayerName(rid) {
			return nil, &OfferError{Msg: fmt.Sprintf("the simulcast rid %q is not valid (RFC 8851: letters, digits, '-' and '_')", truncate(rid, 40))}
		}
		known := false
		for _, r := range ridLines {
			known = known || r == rid
		}
		if !known {
			return nil, &OfferError{Msg: fmt.Sprintf("a=simulcast names rid %q, which no a=rid line declares", truncate(rid, 40))}
		}
	}
	return rids, nil
}

// simulcastSend is the send part of an a=simulcast value
// ("send q;h;f recv x" -> "q;h;f").
func simulcastSend(v string) string {
	f := strings.Fields(v)
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == "send" {
			return f[i+1]
		}
	}
	return ""
}

// limitSimulcast keeps the first max of a section's rids: the other a=rid
// lines go, and a=simulcast lists the kept ones (RFC 8853 §5.3 lets the
// answerer drop rids; with max 1 the publisher sends its first encoding
// alone). It also gives the section an a=msid when it has none: pion
// makes one track of a simulcast section only when it has one. It returns
// the rids kept.
func limitSimulcast(md *sdp.MediaDescription, rids []string, maxLayers int) []string {
	keep := rids[:min(len(rids), max(maxLayers, 1))]
	kept := func(id string) bool {
		for _, k := range keep {
			if k == id {
				return true
			}
		}
		return false
	}
	attrs := md.Attributes[:0:0]
	hasMsid := false
	for _, a := range md.Attributes {
		switch a.Key {
		case "rid":
			if id, _, _ := strings.Cut(a.Value, " "); !kept(id) {
				continue
			}
		case "simulcast":
			paused := map[string]bool{}
			for _, group := range strings.Split(simulcastSend(a.Value), ";") {
				for _, alt := range strings.Split(group, ",") {
					if strings.HasPrefix(alt, "~") {
						paused[alt[1:]] = true
					}
				}
			}
			list := make([]string, len(keep))
			for i, k := range keep {
				list[i] = k
				if paused[k] {
					list[i] = "~" + k
				}
			}
			a.Value = "send " + strings.Join(list, ";")
		case "msid":
			hasMsid = true
		}
		attrs = append(attrs, a)
	}
	if !hasMsid {
		attrs = append(attrs, sdp.Attribute{Key: "msid", Value: "reel-simulcast video"})
	}
	md.Attributes = attrs
	return keep
}

// registerSimulcastExtensions lets pion read which rid a video packet
// belongs to (and answer with the extensions browsers insist on).
func registerSimulcastExtensions(me *webrtc.MediaEngine) error {
	for _, uri := range []string{sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI} {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("registering header extension %s: %w", uri, err)
		}
	}
	return nil
}
