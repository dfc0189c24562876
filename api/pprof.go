package api

import (
	"net/http"
	"net/http/pprof"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/access"
)

// pprofRoutes serves Go's profiles under /debug/pprof/ to admins only.
// Config.PProf turns them on; they stay closed while auth is off, because
// a profile shows what the process holds and costs CPU to take.
func (s *Server) pprofRoutes(e *echo.Echo) {
	adminOnly := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !s.gate.AuthEnabled() {
				return writeProblem(c, http.StatusForbidden, "profiling needs an admin token: configure auth.admin_tokens")
			}
			return s.require(access.Admin, access.API)(next)(c)
		}
	}
	e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)), adminOnly)
	e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)), adminOnly)
	e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)), adminOnly)
	e.POST("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)), adminOnly)
	e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)), adminOnly)
	// Index serves the list and every named profile (heap, goroutine...).
	e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)), adminOnly)
}
