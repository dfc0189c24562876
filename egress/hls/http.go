package hls

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/api/problem"
	"github.com/reel-gateway/reel/live"
)

// ServeHTTP answers /hls/{stream}/{file}: index.m3u8 starts the stream's
// muxer, every other file (media playlists, init files, segments, parts)
// comes from the running muxer; a simulcast stream's layers have theirs
// under /hls/{stream}/~{rid}/. The last path element is the file (with
// the ~{rid}/ before it, for a layer's) and everything between /hls/ and
// it is the stream's name (which may be grouped, "{meeting}/{participant}"),
// so the stream authorized is always the stream served.
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
		problem.Write(w, http.StatusMethodNotAllowed, fmt.Sprintf("HLS is read with GET, not %s", r.Method))
		return
	}

	// A blocking playlist reload waits for the next part or segment, and a
	// segment may be long: such a request sets its own write deadline
	// rather than the HTTP server's, which is shorter.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeWindow))

	name, file, ok := splitPath(r.URL.Path)
	if !ok {
		problem.Write(w, http.StatusNotFound, "HLS paths look like /hls/{stream}/index.m3u8, with a stream name of letters, digits, '.', '_', '~' or '-'")
		return
	}
	// The stream authorized is the stream served, checked before anything
	// says whether it is live.
	if !s.authorize(w, r, name) {
		return
	}
	stream := s.hub.Find(r.Context(), name)
	if stream == nil {
		if m := s.endedMuxer(name); m != nil {
			m.serveEnded(w, r)
			return
		}
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("stream %q is not live", name))
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
		problem.Write(w, http.StatusConflict, reason)
		return
	}
	s.seen(name, s.clientIP(r))

	m, err := s.muxer(stream, strings.HasSuffix(file, ".m3u8"))
	switch {
	case errors.Is(err, live.ErrStreamEnded):
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("stream %q is not live", name))
		return
	case errors.Is(err, errClosed):
		problem.Write(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		s.log.Error("HLS muxer could not start", "stream", name, "error", err)
		problem.Write(w, http.StatusInternalServerError, fmt.Sprintf("HLS for stream %q could not start: %v", name, err))
		return
	case m == nil:
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("HLS of stream %q is not running; load index.m3u8 again", name))
		return
	}
	rec := &recorder{ResponseWriter: w}
	m.serve(rec, r)
	if !rec.wrote {
		// gohlslib answers nothing for names it does not know, such as an
		// expired segment or a part of an earlier session.
		problem.Write(w, http.StatusNotFound, fmt.Sprintf("%s is not (or no longer) part of stream %q", file, name))
	}
}

// writeWindow bounds writing one HLS response, blocking reloads included.
const writeWindow = 2 * time.Minute

// splitPath reads /hls/{stream}/{file}: the file is the last element (a
// simulcast layer's is "~{rid}/{name}", variants.go), the stream
// everything before it, and the name must be a valid one.
func splitPath(p string) (stream, file string, ok bool) {
	rest, found := strings.CutPrefix(p, "/hls/")
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	stream, file = rest[:i], rest[i+1:]
	if j := strings.LastIndexByte(stream, '/'); strings.HasPrefix(stream[j+1:], variantDir) {
		// A layer's file: ~{rid}/{name}.
		stream, file = stream[:max(j, 0)], stream[j+1:]+"/"+file
	}
	return stream, file, file != "" && live.ValidName(stream)
}

// clientIP is the client's address as the access gate reads it.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.Gate == nil {
		return access.HostOnly(r.RemoteAddr)
	}
	return s.cfg.Gate.ClientIP(r)
}

// authorize asks the access gate whether the request may read stream; if
// not, it answers 401 (or 429 after too many wrong tokens) itself.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, stream string) bool {
	if s.cfg.Gate == nil {
		return true
	}
	err := s.cfg.Gate.Authorize(access.Request{Action: access.Read, Stream: stream, Protocol: access.HLS,
		Token: access.BearerToken(r), Addr: s.clientIP(r)})
	var le *access.LimitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &le):
		w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(le.Retry.Seconds())), 1)))
		problem.Write(w, http.StatusTooManyRequests, le.Detail)
	case errors.Is(err, access.ErrNoToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="reel"`)
		problem.Write(w, http.StatusUnauthorized, "this stream needs a token: send Authorization: Bearer <token> or ?token=")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="reel", error="invalid_token"`)
		problem.Write(w, http.StatusUnauthorized, "the token is not valid for this stream")
	}
	return false
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
