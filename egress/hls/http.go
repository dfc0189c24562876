package hls

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/reel-gateway/reel/ingest"
)

// ServeHTTP answers /hls/{stream}/{file}: index.m3u8 starts the stream's
// muxer, every other file (media playlists, init files, segments, parts)
// comes from the running muxer. Only the last two path elements count, so
// the handler works mounted with or without the /hls prefix stripped.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Players are often served from another origin than the media; HLS
	// requests carry no credentials, so any origin may read them.
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range")
	switch r.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Range, Content-Type, Authorization")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet, http.MethodHead:
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		writeProblem(w, http.StatusMethodNotAllowed, fmt.Sprintf("HLS is read with GET, not %s", r.Method))
		return
	}

	name, file, ok := splitPath(r.URL.Path)
	if !ok {
		writeProblem(w, http.StatusNotFound, "HLS paths look like /hls/{stream}/index.m3u8")
		return
	}
	stream := s.hub.Get(name)
	if stream == nil {
		if m := s.endedMuxer(name); m != nil {
			m.serveEnded(w, r)
			return
		}
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("stream %q is not live", name))
		return
	}
	if ok, reason := s.Available(stream); !ok {
		// 409 Conflict: the request is well formed and the stream exists,
		// but its current state (the codec its publisher chose) conflicts
		// with HLS, and the publisher can resolve that by publishing again
		// with H.264 (RFC 9110 15.5.10). 415 and 422 describe a problem
		// with the request's own content, which a GET does not have; 404
		// would claim the stream is not live. 409 is also not cacheable by
		// default, so the playlist works as soon as the stream changes.
		writeProblem(w, http.StatusConflict, reason)
		return
	}
	s.seen(name, clientIP(r))

	m, err := s.muxer(stream, strings.HasSuffix(file, ".m3u8"))
	switch {
	case errors.Is(err, ingest.ErrStreamEnded):
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("stream %q is not live", name))
		return
	case errors.Is(err, errClosed):
		writeProblem(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		s.log.Error("HLS muxer could not start", "stream", name, "error", err)
		writeProblem(w, http.StatusInternalServerError, fmt.Sprintf("HLS for stream %q could not start: %v", name, err))
		return
	case m == nil:
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("HLS of stream %q is not running; load index.m3u8 again", name))
		return
	}
	rec := &recorder{ResponseWriter: w}
	m.serve(rec, r)
	if !rec.wrote {
		// gohlslib answers nothing for names it does not know, such as an
		// expired segment or a part of an earlier session.
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("%s is not (or no longer) part of stream %q", file, name))
	}
}

// splitPath takes {stream} and {file} from the end of the URL path.
func splitPath(p string) (stream, file string, ok bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) < 2 {
		return "", "", false
	}
	stream, file = parts[len(parts)-2], parts[len(parts)-1]
	return stream, file, stream != "" && file != ""
}

// clientIP is the request's remote address without the port. Forwarding
// headers are not trusted: any client can set them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
}

// recorder notes whether gohlslib answered at all.
type recorder struct {
	http.ResponseWriter
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	r.wrote = true
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
