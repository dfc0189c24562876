package rtsp

import (
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtcp"
)

// handler answers gortsplib's callbacks: status codes and per-peer logs
// live here; the stream bookkeeping lives in Server.
type handler struct{ s *Server }

var (
	_ gortsplib.ServerHandlerOnDescribe     = (*handler)(nil)
	_ gortsplib.ServerHandlerOnSetup        = (*handler)(nil)
	_ gortsplib.ServerHandlerOnPlay         = (*handler)(nil)
	_ gortsplib.ServerHandlerOnSessionClose = (*handler)(nil)
	_ gortsplib.ServerHandlerOnRequest      = (*handler)(nil)
	_ gortsplib.ServerHandlerOnResponse     = (*handler)(nil)
)

// OnRequest implements gortsplib.ServerHandlerOnRequest: a SETUP waits for
// other SETUPs from its address (setupgate.go says why).
func (h *handler) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	if req.Method == base.Setup {
		h.s.setups.enter(sc)
	}
}

// OnResponse implements gortsplib.ServerHandlerOnResponse; gortsplib calls
// it once the request, SETUP included, has been handled in full.
func (h *handler) OnResponse(sc *gortsplib.ServerConn, _ *base.Response) {
	h.s.setups.leave(sc)
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	h.s.log.Debug("RTSP connection opened", "peer", peer(ctx.Conn))
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.log.Debug("RTSP connection closed", "peer", peer(ctx.Conn), "reason", ctx.Error)
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	name := streamName(ctx.Path)
	if res, err := h.s.authorize(ctx.Request, ctx.Query, name, peer(ctx.Conn)); res != nil {
		return res, nil, err
	}
	ls, err := h.s.stream(name, layerParam(ctx.Query), true)
	if err != nil {
		return h.failed(err, name, ctx.Conn), nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, ls.rtsp, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	name := streamName(ctx.Path)
	if res, err := h.s.authorize(ctx.Request, ctx.Query, name, peer(ctx.Conn)); res != nil {
		return res, nil, err
	}
	// Further medias of a session must use the stream of its first SETUP,
	// even if the name was republished in between.
	if st := ctx.Session.SetuppedStream(); st != nil {
		return &base.Response{StatusCode: base.StatusOK}, st, nil
	}
	ls, err := h.s.stream(name, layerParam(ctx.Query), false)
	if err != nil {
		return h.failed(err, name, ctx.Conn), nil, nil
	}
	if err := h.s.attach(ctx.Session, ls, peer(ctx.Conn), clientIP(ctx.Conn)); err != nil {
		return h.refused(err, name, ctx.Conn), nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, ls.rtsp, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay. It asks the publisher
// for a keyframe so that the new reader sees a picture at once.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	ls := h.s.play(ctx.Session)
	if ls == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	ls.requestKeyframe()
	if isRelay(ctx.Request) {
		// A cluster's edge relaying the stream asks for keyframes for
		// its own viewers (RTCP PLI or FIR, RFC 4585). Other readers'
		// feedback is not acted on: players do not need it, and acting
		// on ffmpeg's broke its timestamps of a GStreamer publisher.
		ctx.Session.OnPacketRTCPAny(func(_ *description.Media, pkt rtcp.Packet) {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				ls.requestKeyframe()
			}
		})
	}
	// Every reader gets a Sender Report per track now, ahead of its first
	// packets, not in gortsplib's 10 s: a relay's clock places the tracks
	// by them, and a player lines the tracks up by them from the start.
	// Without one, ffmpeg placed a track by the PLAY response's RTP-Info,
	// which lacks the video of a stream whose first keyframe was not
	// forwarded yet (every RTSP stream's first reader), and the video by
	// its first packet: 35 to 135 ms away from the audio.
	ls.reportTo(ctx.Session)
	transport := ""
	if t := ctx.Session.SetuppedTransport(); t != nil {
		transport = t.String()
	}
	ls.log.Info("RTSP reader started", "peer", peer(ctx.Conn), "transport", transport)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	if ls, peer := h.s.detach(ctx.Session); ls != nil {
		ls.log.Info("RTSP reader left", "peer", peer, "reason", ctx.Error)
	}
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError:
// a reader's queue is full. gortsplib would log every occurrence itself.
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.log.Debug("RTSP reader falls behind; packet dropped for it", "err", ctx.Error)
}

// OnDecodeError implements gortsplib.ServerHandlerOnDecodeError.
func (h *handler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	h.s.log.Debug("RTSP reader sent an undecodable packet", "err", ctx.Error)
}

// failed turns a stream lookup error into a response.
func (h *handler) failed(err error, name string, conn *gortsplib.ServerConn) *base.Response {
	switch {
	case errors.Is(err, errNotFound):
		h.s.log.Debug("RTSP request for a stream that is not live", "stream", name, "peer", peer(conn))
		return &base.Response{StatusCode: base.StatusNotFound}
	case errors.Is(err, errNoLayer):
		h.s.log.Info("RTSP request for a simulcast layer the stream does not have", "stream", name, "peer", peer(conn), "err", err)
		return &base.Response{StatusCode: base.StatusNotFound}
	case errors.Is(err, errClosed):
		return &base.Response{StatusCode: base.StatusServiceUnavailable}
	}
	h.s.log.Warn("RTSP cannot serve the stream", "stream", name, "peer", peer(conn), "err", err)
	return &base.Response{StatusCode: base.StatusInternalServerError}
}

// refused answers a reader that Config.Gate turned away: 503, the reason
// in the log (RTSP responses carry no text body players would show) and
// when to retry.
func (h *handler) refused(err error, name string, conn *gortsplib.ServerConn) *base.Response {
	h.s.log.Warn("RTSP reader refused", "stream", name, "peer", peer(conn), "reason", err)
	retry := 10 * time.Second
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		retry = ra.RetryAfter()
	}
	secs := max(int(math.Ceil(retry.Seconds())), 1)
	return &base.Response{StatusCode: base.StatusServiceUnavailable,
		Header: base.Header{"Retry-After": base.HeaderValue{strconv.Itoa(secs)}}}
}

// layerParam is the simulcast layer a reader asks for with ?layer=
// (low, mid, high or a rid); "" is the top layer.
func layerParam(query string) string {
	q, err := url.ParseQuery(query)
	if err != nil {
		return ""
	}
	return q.Get("layer")
}

// RelayUserAgent starts the User-Agent of a cluster node relaying a
// stream (package cluster): its RTCP keyframe requests reach the
// publisher. Anyone may claim it; all it gets is keyframes, which the
// stream rate-limits.
const RelayUserAgent = "reel-relay/"

func isRelay(req *base.Request) bool {
	ua := req.Header["User-Agent"]
	return len(ua) > 0 && strings.HasPrefix(ua[0], RelayUserAgent)
}

func peer(c *gortsplib.ServerConn) string {
	if c == nil || c.NetConn() == nil {
		return ""
	}
	return c.NetConn().RemoteAddr().String()
}
