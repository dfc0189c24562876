package rtsp

import (
	"encoding/base64"
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/reel-gateway/reel/access"
)

// authRealm names Reel in the Basic challenge.
const authRealm = "reel"

// errThrottled ends the connection of a client refused for too many wrong
// credentials (gortsplib sends the response, then closes).
var errThrottled = errors.New("too many wrong credentials from this address")

// authorize checks a DESCRIBE or SETUP with Config.Gate. It returns nil
// when the reader may go on, else the 401 to send and the error for
// gortsplib: with wrong credentials it also closes the connection, so a
// client cannot try token after token on one connection. An address that
// sent too many wrong credentials gets 503 with Retry-After instead.
func (s *Server) authorize(req *base.Request, query, stream, peer string) (*base.Response, error) {
	if s.cfg.Gate == nil {
		return nil, nil
	}
	token, sent := basicPassword(req)
	if !sent {
		if q, err := url.ParseQuery(query); err == nil && q.Has("token") {
			token, sent = q.Get("token"), true
		}
	}
	err := s.cfg.Gate.Authorize(access.Request{Action: access.Read, Stream: stream, Protocol: access.RTSP,
		Token: token, Addr: access.HostOnly(peer)})
	if err == nil {
		return nil, nil
	}
	var le *access.LimitError
	if errors.As(err, &le) {
		// Too many wrong credentials from this address: 503 with
		// Retry-After (RTSP has no 429), and the connection closes.
		s.log.Warn("RTSP reader refused: too many wrong credentials", "stream", stream, "peer", peer)
		secs := max(int(math.Ceil(le.Retry.Seconds())), 1)
		return &base.Response{StatusCode: base.StatusServiceUnavailable,
			Header: base.Header{"Retry-After": base.HeaderValue{strconv.Itoa(secs)}}}, errThrottled
	}
	res := &base.Response{
		StatusCode: base.StatusUnauthorized,
		Header:     base.Header{"WWW-Authenticate": base.HeaderValue{`Basic realm="` + authRealm + `"`}},
	}
	if sent {
		s.log.Warn("RTSP reader refused: wrong credentials", "stream", stream, "peer", peer)
		return res, liberrors.ErrServerAuth{}
	}
	s.log.Debug("RTSP reader asked for credentials", "stream", stream, "peer", peer)
	return res, nil
}

// basicPassword returns the password of a Basic Authorization header; the
// user name is ignored.
func basicPassword(req *base.Request) (string, bool) {
	for _, v := range req.Header["Authorization"] {
		scheme, cred, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Basic") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			continue
		}
		if _, pass, ok := strings.Cut(string(raw), ":"); ok {
			return pass, true
		}
	}
	return "", false
}
