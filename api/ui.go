package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/live"
)

// The web UI: static pages and plain JavaScript modules, embedded in the
// binary. The pages read everything from the API in the browser, so the
// server only hands out files; nothing is templated, nothing is built.
//
//go:embed ui
var uiFS embed.FS

// UIConfig is what the pages need to know about the server that the API
// does not tell them.
type UIConfig struct {
	// RTSPAddr is the RTSP listen address, for the rtsp:// links; empty
	// when RTSP is off.
	RTSPAddr string
}

// uiFile is one embedded file, ready to serve.
type uiFile struct {
	name  string
	ctype string
	etag  string
	body  []byte
}

// uiPages maps routes to the page that serves them.
var uiPages = map[string]string{
	"/":                            "index.html",
	"/watch/:stream":               "watch.html",
	"/watch/:group/:participant":   "watch.html",
	"/publish":                     "publish.html",
	"/publish/:stream":             "publish.html",
	"/publish/:group/:participant": "publish.html",
	"/recordings":                  "recordings.html",
	"/meetings":                    "meetings.html",
	"/meetings/:id":                "meeting.html",
}

// uiCSP keeps the pages to their own scripts and styles: no inline script,
// nothing from other origins.
const uiCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

func (s *Server) uiRoutes(e *echo.Echo) {
	files := map[string]*uiFile{}
	entries, err := fs.ReadDir(uiFS, "ui")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	for _, ent := range entries {
		body, err := fs.ReadFile(uiFS, "ui/"+ent.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(ent.Name()))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		files[ent.Name()] = &uiFile{name: ent.Name(), ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, body: body}
	}
	for route, page := range uiPages {
		f := files[page]
		var mw []echo.MiddlewareFunc
		if strings.Contains(route, ":group") {
			mw = append(mw, grouped)
		}
		e.GET(route, func(c echo.Context) error {
			if name := c.Param("stream"); name != "" && !live.ValidName(name) {
				return writeProblem(c, http.StatusNotFound, "there is no page for the stream name \""+name+"\": stream names are 1-128 letters, digits, '.', '_', '~' or '-'")
			}
			return serveUIFile(c, f)
		}, mw...)
	}
	e.GET("/ui/config.json", s.uiConfig)
	e.GET("/ui/:file", func(c echo.Context) error {
		f, ok := files[c.Param("file")]
		if !ok {
			return writeProblem(c, http.StatusNotFound, "the web UI has no file "+c.Param("file"))
		}
		return serveUIFile(c, f)
	})
}

// serveUIFile answers with f, revalidated by ETag on every load so a new
// binary's pages show at once.
func serveUIFile(c echo.Context, f *uiFile) error {
	h := c.Response().Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	// Pages may carry ?token=; never send it to another site.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", uiCSP)
	http.ServeContent(c.Response(), c.Request(), f.name, time.Time{}, bytes.NewReader(f.body))
	return nil
}

// uiConfig tells the pages which outputs are on and where RTSP listens.
func (s *Server) uiConfig(c echo.Context) error {
	rtspPort := 0
	if s.cfg.UI.RTSPAddr != "" {
		if _, p, err := net.SplitHostPort(s.cfg.UI.RTSPAddr); err == nil {
			rtspPort, _ = strconv.Atoi(p)
		}
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, map[string]any{
		"auth":        s.gate.AuthEnabled(),
		"public_read": s.gate.PublicRead(),
		"rtsp_port":   rtspPort,
		"hls":         s.deps.HLS != nil,
	})
}
