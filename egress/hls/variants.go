package hls

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/reel-gateway/reel/live"
)

// HLS ABR without transcoding: a simulcast publisher already sends its
// picture at several sizes, so each layer becomes a variant of its own.
// gohlslib muxes one video track per Muxer, so a simulcast stream gets one
// gohlslib Muxer per layer, each serving its media playlists, init file,
// segments and parts under /hls/{stream}/~{rid}/; the stream's audio goes
// into the top layer's muxer, whose audio playlist every variant names as
// its AUDIO rendition. /hls/{stream}/index.m3u8 is then a multivariant
// playlist made here, one EXT-X-STREAM-INF per layer with the BANDWIDTH,
// CODECS and RESOLUTION each muxer reports (plus the audio's bandwidth).
//
// Segments line up across variants because every layer is cut on the same
// pictures at the same PTS: the publisher is asked for keyframes on every
// layer at once (one PLI per layer in one RTCP packet, from the muxer's
// start and whenever a segment is due), an encoder that feeds several
// layers makes those keyframes of the same captured picture, and one
// picture has one PTS in every layer (aligner, align.go). Each gohlslib
// muxer then cuts at the first keyframe one segment duration after the
// last cut, which is the same picture, at the same PTS, in every variant.

// variantDir prefixes a layer's directory; a stream name cannot start
// with '~', so /hls/{stream}/~{rid}/ is never another stream's path.
const variantDir = "~"

// variant is one simulcast layer's gohlslib muxer.
type variant struct {
	layer *live.Track
	hls   *gohlslib.Muxer
	audio bool // carries the stream's audio rendition
}

// startVariants builds one gohlslib muxer per layer of v, the audio in the
// best ranked one's, and subscribes.
func (m *muxer) startVariants(cfg Config, v *live.Track) error {
	ranked := v.RankedLayers()
	top := ranked[len(ranked)-1]
	audio := m.stream.Track(live.Audio)
	for _, l := range v.Layers() {
		out, write, ok := hlsTrack(l)
		if !ok {
			m.closeMuxers()
			return fmt.Errorf("HLS cannot carry %s", l.Codec)
		}
		vr := &variant{layer: l, hls: m.newGohlslib(cfg)}
		t, err := m.addTrack(l, out, write, vr.hls)
		if err != nil {
			m.closeMuxers()
			return err
		}
		t.layer = true
		if l == top && audio != nil {
			if aout, awrite, ok := hlsTrack(audio); ok {
				if _, err := m.addTrack(audio, aout, awrite, vr.hls); err != nil {
					m.closeMuxers()
					return err
				}
				vr.audio = true
			}
		}
		if err := vr.hls.Start(); err != nil {
			m.closeMuxers()
			return fmt.Errorf("starting the HLS muxer of layer %s: %w", l.RID, err)
		}
		m.variants = append(m.variants, vr)
	}
	m.log.Info("HLS variants", "layers", len(m.variants), "audio_in", top.RID)
	m.unalign = m.stream.AlignKeyframes()
	if err := m.subscribe(); err != nil {
		m.unalign()
		return err
	}
	return nil
}

// serveVariants answers a request to a simulcast stream's HLS: the
// multivariant playlist, or a file of one layer's muxer.
func (m *muxer) serveVariants(w http.ResponseWriter, r *http.Request) {
	dir := path.Base(path.Dir(r.URL.Path))
	if rid, ok := strings.CutPrefix(dir, variantDir); ok {
		for _, v := range m.variants {
			if v.layer.RID == rid {
				v.hls.Handle(w, r)
				return
			}
		}
		return // not answered: 404
	}
	if path.Base(r.URL.Path) == "index.m3u8" {
		m.serveMultivariant(w, r)
	}
}

// serveMultivariant writes the multivariant playlist: one variant per
// layer, lowest first, each with the stream's audio.
func (m *muxer) serveMultivariant(w http.ResponseWriter, r *http.Request) {
	out := &playlist.Multivariant{Version: 10, IndependentSegments: true}
	var audioCodec string
	audioBW := 0
	if a := m.stream.Track(live.Audio); a != nil {
		audioBW = int(math.Ceil(a.Bitrate()))
	}
	order := m.stream.Track(live.Video).RankedLayers()
	byLayer := map[*live.Track]*playlist.MultivariantVariant{}
	for _, v := range m.variants {
		pl, err := v.multivariant(r)
		if err != nil {
			m.warn("HLS variant playlist", "rid", v.layer.RID, "error", err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		mv := *pl.Variants[0]
		mv.URI = variantDir + v.layer.RID + "/" + mv.URI
		mv.Video, mv.Audio = "", ""
		byLayer[v.layer] = &mv
		if !v.audio {
			continue
		}
		for _, rend := range pl.Renditions {
			if rend.Type != playlist.MultivariantRenditionTypeAudio || rend.URI == nil {
				continue
			}
			r := *rend
			uri := variantDir + v.layer.RID + "/" + *rend.URI
			r.URI, r.GroupID, r.Default, r.Autoselect = &uri, "audio", true, true
			out.Renditions = append(out.Renditions, &r)
		}
		// The audio variant's CODECS holds video then audio.
		if len(mv.Codecs) > 1 {
			audioCodec = mv.Codecs[len(mv.Codecs)-1]
			mv.Codecs = mv.Codecs[:len(mv.Codecs)-1]
		}
	}
	for _, l := range order {
		mv := byLayer[l]
		if mv == nil {
			continue
		}
		if len(out.Renditions) > 0 {
			mv.Audio = "audio"
			if audioCodec != "" {
				mv.Codecs = append(mv.Codecs, audioCodec)
			}
			mv.Bandwidth += audioBW
			if mv.AverageBandwidth != nil {
				avg := *mv.AverageBandwidth + audioBW
				mv.AverageBandwidth = &avg
			}
		}
		out.Variants = append(out.Variants, mv)
	}
	// Lowest first by what each muxer has written (its RESOLUTION, then
	// BANDWIDTH): the hub ranks a layer by the size its keyframes show,
	// and a layer whose first keyframe it has not sized yet is ranked
	// last, while the muxer, which has cut segments of it, knows.
	slices.SortStableFunc(out.Variants, func(a, b *playlist.MultivariantVariant) int {
		return cmp.Or(cmp.Compare(pixels(a.Resolution), pixels(b.Resolution)), cmp.Compare(a.Bandwidth, b.Bandwidth))
	})
	body, err := out.Marshal()
	if err != nil {
		m.warn("HLS multivariant playlist", "error", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// multivariant is the layer muxer's own multivariant playlist (its one
// variant and, with audio, its audio rendition). gohlslib answers it once
// the muxer has content, as for any player.
func (v *variant) multivariant(r *http.Request) (*playlist.Multivariant, error) {
	req := r.Clone(r.Context())
	req.URL.Path = "/index.m3u8"
	rec := httptest.NewRecorder()
	v.hls.Handle(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("gohlslib answered %d", rec.Code)
	}
	pl, err := playlist.Unmarshal(rec.Body.Bytes())
	if err != nil {
		return nil, err
	}
	mv, ok := pl.(*playlist.Multivariant)
	if !ok || len(mv.Variants) == 0 {
		return nil, fmt.Errorf("gohlslib's index.m3u8 is not a multivariant playlist with a variant")
	}
	return mv, nil
}

// pixels is the area of a RESOLUTION ("640x360"); 0 if it has none.
func pixels(res string) int {
	w, h, ok := strings.Cut(res, "x")
	if !ok {
		return 0
	}
	wi, err1 := strconv.Atoi(w)
	hi, err2 := strconv.Atoi(h)
	if err1 != nil || err2 != nil {
		return 0
	}
	return wi * hi
}
