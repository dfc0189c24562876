package api

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/storage"
)

// The recordings API beyond this node's disk: with storage.s3, the
// bucket is the cluster's archive (every node lists and serves every
// uploaded recording); in a cluster without S3, a recording another node
// holds is answered with a redirect there.

// presignTTL is how long a presigned download URL works.
const presignTTL = 10 * time.Minute

// findRecording returns a recording's metadata: this node's, else the
// archive's.
func (s *Server) findRecording(ctx context.Context, id string) (recorder.Info, bool) {
	if in, ok := s.deps.Recordings.Catalog().Get(id); ok {
		return in, true
	}
	if s.deps.Archive != nil {
		if o, ok := s.deps.Archive.Lookup(ctx, id); ok {
			return o.Info, true
		}
	}
	return recorder.Info{}, false
}

// allRecordings are this node's recordings and, with an archive, those in
// the bucket that are not on this disk (any more).
func (s *Server) allRecordings(q recorder.Query) (recorder.Page, []storage.Object, error) {
	if s.deps.Archive == nil {
		p, err := s.deps.Recordings.Catalog().List(q)
		return p, nil, err
	}
	local, err := s.deps.Recordings.Catalog().List(recorder.Query{Limit: recorder.MaxLimit * 1000})
	if err != nil {
		return recorder.Page{}, nil, err
	}
	all := local.Recordings
	have := map[string]bool{}
	for _, in := range all {
		have[in.ID] = true
	}
	objects := s.deps.Archive.Recordings()
	for _, o := range objects {
		if !have[o.ID] {
			all = append(all, o.Info)
		}
	}
	p, err := recorder.Select(all, q)
	return p, objects, err
}

// archived returns the bucket's object of a recording that is not on
// this disk.
func (s *Server) archived(ctx context.Context, id string) (storage.Object, bool) {
	if s.deps.Archive == nil {
		return storage.Object{}, false
	}
	if _, ok := s.deps.Recordings.Catalog().Get(id); ok {
		return storage.Object{}, false
	}
	return s.deps.Archive.Lookup(ctx, id)
}

// archivedJSON is a recording of the bucket as the API shows it.
func archivedJSON(o storage.Object) recordingJSON {
	return recordingJSON{Info: o.Info, Path: o.Key, FileURL: "/api/v1/recordings/" + o.ID + "/file", Archived: true}
}

// serveArchived serves a recording's file from the bucket: a 302 to a
// presigned URL (storage.redirect), or streamed with Range support.
func (s *Server) serveArchived(c echo.Context, o storage.Object) error {
	name := path.Base(o.Key)
	ctx := c.Request().Context()
	if s.cfg.ArchiveRedirect {
		u, err := s.deps.Archive.PresignedURL(ctx, o.Key, name, presignTTL)
		if err != nil {
			return s.archiveFailed(c, o, err)
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.Redirect(http.StatusFound, u.String())
	}
	obj, st, err := s.deps.Archive.Open(ctx, o.Key)
	if err != nil {
		return s.archiveFailed(c, o, err)
	}
	defer obj.Close()
	etag := fmt.Sprintf(`"%x-%x"`, st.Size, st.LastModified.UnixNano())
	h := c.Response().Header()
	h.Set("Content-Type", mediaType(o.Container))
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	if !satisfiableRange(c.Request(), etag) {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", st.Size))
		return writeProblem(c, http.StatusRequestedRangeNotSatisfiable,
			fmt.Sprintf("the Range asks for no bytes of this %d-byte file (bytes=-0 is empty); ask for bytes=0- or a suffix of 1 or more", st.Size))
	}
	http.ServeContent(&progressWriter{ResponseWriter: c.Response(), rc: http.NewResponseController(c.Response())},
		c.Request(), name, st.LastModified, obj)
	return nil
}

func (s *Server) archiveFailed(c echo.Context, o storage.Object, err error) error {
	s.cfg.Logger.Error("recording not served from the bucket", "recording", o.ID, "key", o.Key, "err", err)
	c.Response().Header().Set("Retry-After", "5")
	return writeProblem(c, http.StatusBadGateway, "recording "+o.ID+" is in the S3 archive, which did not answer; try again")
}

// deleteArchived deletes a recording that only the bucket holds.
func (s *Server) deleteArchived(c echo.Context, o storage.Object) error {
	if err := s.deps.Archive.Delete(c.Request().Context(), o); err != nil {
		return s.archiveFailed(c, o, err)
	}
	s.cfg.Logger.Info("recording deleted from the bucket", "recording", o.ID, "stream", o.Stream, "key", o.Key)
	if o.Occurrence != "" && s.deps.Meetings != nil {
		// Audited; the node holding the occurrence marks it in the
		// manifest when it sees the entry.
		s.deps.Meetings.RecordingDeleted(o.Occurrence, o.ID, o.Participant, who(c), "deleted through the API")
	}
	return c.NoContent(http.StatusNoContent)
}

// elsewhere answers a request for a recording this node does not hold
// with a 307 to the node that does, in a cluster without S3. It reports
// whether it answered.
func (s *Server) elsewhere(c echo.Context, id string) bool {
	n := s.deps.Cluster
	if n == nil || s.deps.Archive != nil {
		return false
	}
	node, err := n.RecordingNode(c.Request().Context(), id)
	if err != nil || node == "" || node == n.ID() {
		return false
	}
	ni := n.NodeByID(node)
	if ni == nil {
		_ = writeProblem(c, http.StatusServiceUnavailable, "recording "+id+" is held by node "+node+", which is not in the cluster now; try again when it is back")
		return true
	}
	c.Response().Header().Set("Location", ni.HTTPURL+c.Request().URL.RequestURI())
	_ = c.NoContent(http.StatusTemporaryRedirect)
	return true
}
