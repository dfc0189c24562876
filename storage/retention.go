package storage

import (
	"context"
	"slices"
	"time"

	"github.com/reel-gateway/reel/recorder"
)

// EnforceRetention applies recordings.max_age and max_total_size to the
// bucket, the cluster's archive, as the recorder does to its disk: the
// oldest recordings go first, a file with its sidecar, each deletion
// logged. Every node may run it; deleting twice is harmless. It returns
// the recordings deleted.
func (s *Store) EnforceRetention(ctx context.Context) []Object {
	if s.cfg.MaxAge <= 0 && s.cfg.MaxTotalSize == 0 {
		return nil
	}
	all := s.Recordings()
	slices.SortFunc(all, func(a, b Object) int { return endOf(a.Info).Compare(endOf(b.Info)) })
	var total int64
	for _, o := range all {
		total += o.Size
	}
	var out []Object
	del := func(o Object, reason string) {
		if s.cfg.Protect != nil {
			if why := s.cfg.Protect(ctx, o.Info); why != "" {
				s.log.Info("bucket retention skips a protected recording", "recording", o.ID, "key", o.Key, "why", why)
				return
			}
		}
		if err := s.Delete(ctx, o); err != nil {
			s.log.Warn("bucket retention could not delete a recording", "recording", o.ID, "key", o.Key, "err", err)
			return
		}
		total -= o.Size
		out = append(out, o)
		s.log.Info("recording deleted from the bucket by retention", "recording", o.ID, "stream", o.Stream, "key", o.Key, "reason", reason)
	}
	kept := all[:0]
	for _, o := range all {
		if s.cfg.MaxAge > 0 && endOf(o.Info).Before(time.Now().Add(-s.cfg.MaxAge)) {
			del(o, "older than recordings.max_age ("+s.cfg.MaxAge.String()+")")
			continue
		}
		kept = append(kept, o)
	}
	for _, o := range kept {
		if s.cfg.MaxTotalSize == 0 || uint64(max(total, 0)) <= s.cfg.MaxTotalSize {
			break
		}
		del(o, "the archive exceeds recordings.max_total_size ("+recorder.FormatSize(s.cfg.MaxTotalSize)+")")
	}
	return out
}

func endOf(in recorder.Info) time.Time {
	if !in.End.IsZero() {
		return in.End
	}
	return in.Start
}
