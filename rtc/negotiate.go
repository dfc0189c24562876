package rtc

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
	"github.com/reel-gateway/reel/live"
)

// MaxSDPSize bounds an offer. Browser offers with every codec are ~10 KiB.
const MaxSDPSize = 64 << 10

// Preferences are the codecs an answer may pick, and whose order wins.
type Preferences struct {
	// Video and Audio list the codecs accepted, most preferred first.
	Video []live.Codec
	Audio []live.Codec
	// ServerOrder makes the order of Video and Audio pick the codec. By
	// default the offer's order does (RFC 3264 §6.1: the answerer keeps
	// the offerer's preference): the first offered codec that the lists
	// allow wins, so a browser that puts VP8 first is answered VP8.
	ServerOrder bool
	// SimulcastLayers is the most simulcast layers (rids) accepted of a
	// video section; 0 means live.DefaultSimulcastLayers.
	SimulcastLayers int
}

// DefaultPreferences accepts H.264, VP8, VP9, AV1 and H.265 video and Opus
// audio (live.DefaultVideoPreference, live.DefaultAudioPreference), in the
// offer's order.
func DefaultPreferences() Preferences {
	return Preferences{Video: live.DefaultVideoPreference, Audio: live.DefaultAudioPreference}
}

// Prefer values of the configuration (codecs.prefer).
const (
	PreferOffer  = "offer"
	PreferServer = "server"
)

// ParsePrefer reads codecs.prefer: "offer" (the default) or "server".
func ParsePrefer(s string) (serverOrder bool, err error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", PreferOffer:
		return false, nil
	case PreferServer:
		return true, nil
	}
	return false, fmt.Errorf("codecs.prefer: %q is neither %q nor %q", s, PreferOffer, PreferServer)
}

// offeredFormat is one payload type of an m-line.
type offeredFormat struct {
	pt    uint8
	codec live.Codec
	clock uint32
	chans uint16
	fmtp  string
}

// parseOffer checks an SDP offer and returns the parsed form.
func parseOffer(offer []byte) (*sdp.SessionDescription, error) {
	if len(offer) == 0 {
		return nil, &OfferError{Msg: "the request body is empty; send an SDP offer"}
	}
	if len(offer) > MaxSDPSize {
		return nil, &OfferError{Msg: fmt.Sprintf("the SDP offer is %d bytes; at most %d are accepted", len(offer), MaxSDPSize)}
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(offer); err != nil {
		return nil, &OfferError{Msg: fmt.Sprintf("the body is not a valid SDP offer: %v", err)}
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, &OfferError{Msg: "the SDP offer has no media sections", Unprocessable: true}
	}
	return &sd, nil
}

// NegotiatePublisher checks a WHIP offer and picks its tracks' codecs by
// prefs: the offer's order among the allowed codecs, or prefs' order. It returns the offer as pion should apply it (bundle-only
// sections given a port), one track per media section, and a MediaEngine
// holding exactly those codecs.
func NegotiatePublisher(offer []byte, prefs Preferences) (string, []*live.Track, *webrtc.MediaEngine, error) {
	sd, err := parseOffer(offer)
	if err != nil {
		return "", nil, nil, err
	}
	rewrite := unbundleOnly(sd)
	// A simulcast video section keeps at most SimulcastLayers rids.
	var rids []string
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != string(live.Video) || md.MediaName.Port.Value == 0 {
			continue
		}
		found, err := offeredRIDs(md)
		if err != nil {
			return "", nil, nil, err
		}
		if found != nil {
			maxLayers := prefs.SimulcastLayers
			if maxLayers == 0 {
				maxLayers = live.DefaultSimulcastLayers
			}
			rids, rewrite = limitSimulcast(md, found, min(maxLayers, live.MaxLayers)), true
		}
		break // a stream has one video track; negotiate refuses a second
	}
	if rewrite {
		if offer, err = sd.Marshal(); err != nil {
			return "", nil, nil, &OfferError{Msg: fmt.Sprintf("the SDP offer cannot be rewritten: %v", err)}
		}
	}
	tracks, me, err := negotiate(sd, prefs, true)
	if err != nil {
		return "", nil, nil, err
	}
	if rids != nil {
		if err := registerSimulcastExtensions(me); err != nil {
			return "", nil, nil, err
		}
		for _, t := range tracks {
			if t.Kind == live.Video && len(rids) > 1 {
				if err := t.AddLayers(rids); err != nil {
					return "", nil, nil, &OfferError{Unprocessable: true, Msg: fmt.Sprintf("the simulcast layers cannot be used: %v", err)}
				}
			}
		}
	}
	return string(offer), tracks, me, nil
}

// negotiate picks, for each media section, a codec among those offered
// (pickFormat says which), and returns one Track per section plus a MediaEngine that holds
// exactly those codecs, so pion's answer names one codec per track and the
// publisher cannot switch to another mid-stream.
func negotiate(sd *sdp.SessionDescription, prefs Preferences, sending bool) ([]*live.Track, *webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	var tracks []*live.Track
	for _, md := range sd.MediaDescriptions {
		kind := live.MediaKind(md.MediaName.Media)
		if kind != live.Video && kind != live.Audio {
			continue
		}
		if md.MediaName.Port.Value == 0 {
			continue // rejected section
		}
		if err := checkDirection(md, kind, sending); err != nil {
			return nil, nil, err
		}
		for _, t := range tracks {
			if t.Kind == kind {
				return nil, nil, &OfferError{Unprocessable: true, Msg: fmt.Sprintf(
					"the offer has more than one %s track; a stream carries at most one video and one audio track", kind)}
			}
		}
		prefer := prefs.Video
		if kind == live.Audio {
			prefer = prefs.Audio
		}
		f, ok := pickFormat(offeredFormats(md), prefer, prefs.ServerOrder)
		if !ok {
			return nil, nil, &OfferError{Unprocessable: true, Msg: fmt.Sprintf(
				"none of the offered %s codecs is accepted; offer one of %s", kind, codecList(prefer))}
		}
		t := &live.Track{Kind: kind, Codec: f.codec, PayloadType: f.pt, ClockRate: f.clock, Channels: f.chans, Fmtp: f.fmtp}
		if err := registerTrackCodec(me, t); err != nil {
			return nil, nil, err
		}
		tracks = append(tracks, t)
	}
	if len(tracks) == 0 {
		return nil, nil, &OfferError{Unprocessable: true, Msg: "the SDP offer has no audio or video section"}
	}
	return tracks, me, nil
}

// checkDirection refuses sections that would carry no media our way (WHIP)
// or to the viewer (WHEP).
func checkDirection(md *sdp.MediaDescription, kind live.MediaKind, sending bool) error {
	dir := "sendrecv"
	for _, a := range md.Attributes {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			dir = a.Key
		}
	}
	if sending && (dir == "recvonly" || dir == "inactive") {
		return &OfferError{Unprocessable: true, Msg: fmt.Sprintf("the %s section is %s; a WHIP offer must send media (sendonly)", kind, dir)}
	}
	if !sending && (dir == "sendonly" || dir == "inactive") {
		return &OfferError{Unprocessable: true, Msg: fmt.Sprintf("the %s section is %s; a WHEP offer must receive media (recvonly)", kind, dir)}
	}
	return nil
}

func offeredFormats(md *sdp.MediaDescription) []offeredFormat {
	fmtps := map[string]string{}
	for _, a := range md.Attributes {
		if a.Key == "fmtp" {
			if pt, rest, ok := strings.Cut(a.Value, " "); ok {
				fmtps[pt] = strings.TrimSpace(rest)
			}
		}
	}
	var out []offeredFormat
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		ptStr, enc, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if err != nil {
			continue
		}
		parts := strings.Split(enc, "/")
		codec, ok := live.CodecFromMime(parts[0])
		if !ok {
			continue
		}
		f := offeredFormat{pt: uint8(pt), codec: codec, fmtp: fmtps[ptStr]}
		if len(parts) > 1 {
			if c, err := strconv.ParseUint(parts[1], 10, 32); err == nil {
				f.clock = uint32(c)
			}
		}
		if len(parts) > 2 {
			if c, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
				f.chans = uint16(c)
			}
		}
		if f.clock != codec.ClockRate() {
			continue
		}
		out = append(out, f)
	}
	return out
}

// pickFormat returns the offered format to answer with: of the first
// codec in the offer's order that allowed lists (or, with serverOrder, of
// the first codec in allowed that the offer has). Among H.264 variants it
// keeps the offerer's order but prefers packetization-mode=1 (FU-A), which
// every encoder we know sends.
func pickFormat(offered []offeredFormat, allowed []live.Codec, serverOrder bool) (offeredFormat, bool) {
	order := allowed
	if !serverOrder {
		order = nil
		for i := range offered {
			if f := &offered[i]; slices.Contains(allowed, f.codec) && acceptable(f) && !slices.Contains(order, f.codec) {
				order = append(order, f.codec)
			}
		}
	}
	for _, c := range order {
		var best *offeredFormat
		for i := range offered {
			f := &offered[i]
			if f.codec != c || !acceptable(f) {
				continue
			}
			if best == nil || (c == live.H264 && fmtpParam(best.fmtp, "packetization-mode") != "1" && fmtpParam(f.fmtp, "packetization-mode") == "1") {
				best = f
			}
		}
		if best != nil {
			return *best, true
		}
	}
	return offeredFormat{}, false
}

// acceptable filters variants the outputs cannot handle: H.264 interleaved
// mode (packetization-mode=2), H.265 with decoding order numbers
// (sprop-max-don-diff > 0, which no depacketizer here reads) and VP9
// profiles other than 0 and 2.
func acceptable(f *offeredFormat) bool {
	switch f.codec {
	case live.H264:
		pm := fmtpParam(f.fmtp, "packetization-mode")
		return pm == "" || pm == "0" || pm == "1"
	case live.H265:
		d := fmtpParam(f.fmtp, "sprop-max-don-diff")
		return d == "" || d == "0"
	case live.VP9:
		p := fmtpParam(f.fmtp, "profile-id")
		return p == "" || p == "0" || p == "2"
	}
	return true
}

func fmtpParam(fmtp, key string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// videoFeedback is what we ask publishers for and offer viewers: NACK for
// loss, PLI/FIR for keyframes, TWCC for the sender's bandwidth estimate.
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"},
	{Type: "nack", Parameter: "pli"}, {Type: "transport-cc"},
}

// registerTrackCodec puts the track's codec, with the offered payload type
// and format parameters, into me.
func registerTrackCodec(me *webrtc.MediaEngine, t *live.Track) error {
	params := webrtc.RTPCodecParameters{
		PayloadType: webrtc.PayloadType(t.PayloadType),
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: t.Codec.MimeType(), ClockRate: t.ClockRate, Channels: t.Channels, SDPFmtpLine: t.Fmtp,
		},
	}
	typ := webrtc.RTPCodecTypeVideo
	if t.Kind == live.Audio {
		typ = webrtc.RTPCodecTypeAudio
		params.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "transport-cc"}}
	} else {
		params.RTCPFeedback = videoFeedback
	}
	if err := me.RegisterCodec(params, typ); err != nil {
		return fmt.Errorf("registering %s: %w", t.Codec, err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: "urn:ietf:params:rtp-hdrext:sdes:mid"}, typ); err != nil {
		return fmt.Errorf("registering mid header extension: %w", err)
	}
	return nil
}

func codecList(cs []live.Codec) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// ViewerTrack is a stream track as one viewer receives it: the payload type
// and format parameters come from the viewer's offer.
type ViewerTrack struct {
	Track *live.Track
	Codec webrtc.RTPCodecCapability
}

// NegotiateViewer matches a WHEP offer against the live stream's tracks. A
// viewer that offers no section of a kind simply does not get that track;
// one that offers the kind without the stream's codec is refused, because
// it would show nothing.
func NegotiateViewer(offer []byte, s *live.Stream) ([]ViewerTrack, *webrtc.MediaEngine, error) {
	sd, err := parseOffer(offer)
	if err != nil {
		return nil, nil, err
	}
	me := &webrtc.MediaEngine{}
	var out []ViewerTrack
	for _, t := range s.Tracks() {
		md := firstSection(sd, t.Kind)
		if md == nil {
			continue
		}
		if err := checkDirection(md, t.Kind, false); err != nil {
			return nil, nil, err
		}
		f, ok := matchViewerFormat(offeredFormats(md), t)
		if !ok {
			return nil, nil, &OfferError{Unprocessable: true, Msg: fmt.Sprintf(
				"the stream's %s is %s, which the offer does not list; this player cannot show it", t.Kind, t.Codec)}
		}
		vt := &live.Track{Kind: t.Kind, Codec: t.Codec, PayloadType: f.pt, ClockRate: t.ClockRate, Channels: t.Channels, Fmtp: f.fmtp}
		if err := registerTrackCodec(me, vt); err != nil {
			return nil, nil, err
		}
		out = append(out, ViewerTrack{Track: t, Codec: webrtc.RTPCodecCapability{
			MimeType: t.Codec.MimeType(), ClockRate: t.ClockRate, Channels: t.Channels, SDPFmtpLine: f.fmtp}})
	}
	if len(out) == 0 {
		return nil, nil, &OfferError{Unprocessable: true, Msg: "the offer has no audio or video section that can receive this stream"}
	}
	if v := s.Track(live.Video); v != nil && v.Layers() != nil {
		// A simulcast stream's viewer gets the layer its bandwidth fits,
		// estimated from transport-wide feedback (egress/whep).
		for _, typ := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, typ); err != nil {
				return nil, nil, fmt.Errorf("registering transport-cc: %w", err)
			}
		}
	}
	return out, me, nil
}

func firstSection(sd *sdp.SessionDescription, kind live.MediaKind) *sdp.MediaDescription {
	for _, md := range sd.MediaDescriptions {
		if live.MediaKind(md.MediaName.Media) == kind && md.MediaName.Port.Value != 0 {
			return md
		}
	}
	return nil
}

// matchViewerFormat picks the viewer's payload type for the stream's codec.
// H.264 must agree on packetization mode; an equal profile is preferred but
// not required, since decoders accept any profile they support.
func matchViewerFormat(offered []offeredFormat, t *live.Track) (offeredFormat, bool) {
	var best *offeredFormat
	score := -1
	for i := range offered {
		f := &offered[i]
		if f.codec != t.Codec {
			continue
		}
		s := 0
		if t.Codec == live.H264 {
			if pmOrZero(f.fmtp) != pmOrZero(t.Fmtp) {
				continue
			}
			if strings.EqualFold(profileIDC(f.fmtp), profileIDC(t.Fmtp)) {
				s = 1
			}
		}
		if s > score {
			best, score = f, s
		}
	}
	if best == nil {
		return offeredFormat{}, false
	}
	return *best, true
}

func pmOrZero(fmtp string) string {
	if pm := fmtpParam(fmtp, "packetization-mode"); pm != "" {
		return pm
	}
	return "0"
}

func profileIDC(fmtp string) string {
	if p := fmtpParam(fmtp, "profile-level-id"); len(p) >= 2 {
		return p[:2]
	}
	return ""
}

// unbundleOnly gives every bundle-only section (port 0 and a=bundle-only,
// as JSEP max-bundle offers from webrtcbin have) the port 9 of a bundled
// section, so neither negotiate nor pion takes it for a rejected one.
func unbundleOnly(sd *sdp.SessionDescription) bool {
	changed := false
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Port.Value != 0 {
			continue
		}
		if _, ok := md.Attribute("bundle-only"); ok {
			md.MediaName.Port.Value = 9
			changed = true
		}
	}
	return changed
}
