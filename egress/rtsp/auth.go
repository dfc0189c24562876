package rtsp

import (
	"encoding/base64"
	"net/url"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// authRealm names Reel in the Basic challenge.
const authRealm = "reel"

// authorize checks a DESCRIBE or SETUP with Config.Authorize. It returns
// nil when the reader may go on, else the 401 to send and the error for
// gortsplib: with wrong credentials it also closes the connection, so a
// client cannot try token after token on one connection.
func (s *Server) authorize(req *base.Request, query, stream, peer string) (*base.Response, error) {
	if s.cfg.Authorize == nil {
		return nil, nil
	}
	token, sent := basicPassword(req)
	if !sent {
		if q, err := url.ParseQuery(query); err == nil && q.Has("token") {
			token, sent = q.Get("token"), true
		}
	}
	if s.cfg.Authorize(token, stream) {
		return nil, nil
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
