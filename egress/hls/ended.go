package hls

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/reel-gateway/reel/api/problem"
)

// When a publisher leaves, its muxer lingers for Config.EndedLinger and
// keeps serving the segments it has, with media playlists that end in
// #EXT-X-ENDLIST: players then play to the end and stop, as for a finished
// broadcast, instead of reloading a playlist that answers 404. gohlslib
// has no notion of an ended stream, so the playlists are rewritten here.

// endedWait bounds how long a request to an ended muxer may wait inside
// gohlslib, which blocks without a deadline for content that will not come
// now (a part announced by a preload hint, the first segment of a stream
// that ended before one was complete).
const endedWait = 2 * time.Second

// publisherLeft reports whether the muxer's stream has ended.
func (m *muxer) publisherLeft() bool {
	select {
	case <-m.sub.Done():
		return true
	default:
		return false
	}
}

// serveEnded answers a request to a muxer whose publisher left.
func (m *muxer) serveEnded(w http.ResponseWriter, r *http.Request) {
	// Blocking playlist reloads (LL-HLS) wait for a segment or part that
	// will never be made: ask for the playlist as it stands.
	q := r.URL.Query()
	q.Del("_HLS_msn")
	q.Del("_HLS_part")
	q.Del("_HLS_skip")
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()

	rec := httptest.NewRecorder()
	answered := &recorder{ResponseWriter: rec}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.serve(answered, r2)
	}()
	timer := time.NewTimer(endedWait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		// The goroutine returns when the muxer closes; its answer is dropped.
		problem.Write(w, http.StatusNotFound, "the stream has ended, and this part of it was never made")
		return
	case <-r.Context().Done():
		return
	}
	if !answered.wrote {
		problem.Write(w, http.StatusNotFound, "this file is not part of the ended stream")
		return
	}
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK && bytes.Contains(body, []byte("#EXT-X-TARGETDURATION")) {
		body = endPlaylist(body)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// endPlaylist turns a live media playlist into a finished one: no hint of
// a part to come, and the end tag.
func endPlaylist(pl []byte) []byte {
	var out bytes.Buffer
	for line := range bytes.Lines(pl) {
		if bytes.HasPrefix(line, []byte("#EXT-X-PRELOAD-HINT")) || bytes.HasPrefix(line, []byte("#EXT-X-ENDLIST")) {
			continue
		}
		out.Write(line)
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
		out.WriteByte('\n')
	}
	out.WriteString("#EXT-X-ENDLIST\n")
	return out.Bytes()
}

// linger keeps an ended muxer serving for the configured time, or until
// the server closes.
func linger(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
