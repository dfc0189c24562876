package recorder

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultCheckInterval is how often retention and the disk guard run
// unless Config.CheckInterval says otherwise.
const DefaultCheckInterval = time.Minute

// Deletion is one recording retention deleted, and why.
type Deletion struct {
	Info
	Reason string
}

// EnforceRetention deletes the oldest finished (or repaired) recordings
// that are older than Config.MaxAge, then more of them, oldest first,
// while all recordings together exceed Config.MaxTotalSize. Recordings in
// progress and failed ones are never deleted: a failed recording is kept
// for a person to look at. Each deletion is logged. The Recorder calls it
// every Config.CheckInterval; it is exported for tests and tools.
func (r *Recorder) EnforceRetention() []Deletion {
	if r.maxAge <= 0 && r.maxTotal == 0 {
		return nil
	}
	r.retainMu.Lock()
	defer r.retainMu.Unlock()
	all := r.cat.snapshot()
	sortOldestFirst(all)
	var total int64
	for _, in := range all {
		total += in.Size
	}
	var out []Deletion
	del := func(in Info, reason string) {
		got, err := r.cat.Delete(in.ID)
		if err != nil {
			if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrRecording) {
				r.log.Warn("retention could not delete a recording", "recording", in.ID, "stream", in.Stream, "error", err)
			}
			return
		}
		total -= got.Size
		out = append(out, Deletion{Info: got, Reason: reason})
		if r.onDelete != nil {
			r.onDelete(Deletion{Info: got, Reason: reason})
		}
		r.log.Info("recording deleted by retention", "recording", got.ID, "stream", got.Stream,
			"end", endOf(got), "size", got.Size, "reason", reason)
	}
	// Protect is asked last, for a recording that would go otherwise: it
	// may ask a remote archive.
	deletable := func(in Info) bool {
		if in.State != StateFinished && in.State != StateRepaired {
			return false
		}
		return r.protect == nil || r.protect(in) == ""
	}
	now := r.now()
	kept := all[:0]
	for _, in := range all {
		if r.maxAge > 0 && endOf(in).Before(now.Add(-r.maxAge)) && deletable(in) {
			del(in, "older than recordings.max_age ("+r.maxAge.String()+")")
			continue
		}
		kept = append(kept, in)
	}
	if r.maxTotal > 0 {
		for _, in := range kept {
			if total <= int64(min(r.maxTotal, math.MaxInt64)) {
				break
			}
			if deletable(in) {
				del(in, "recordings exceed recordings.max_total_size ("+FormatSize(r.maxTotal)+")")
			}
		}
		if total > int64(min(r.maxTotal, math.MaxInt64)) {
			r.log.Warn("recordings exceed recordings.max_total_size, but what is left is recording or failed and is not deleted",
				"total", total, "max_total_size", r.maxTotal)
		}
	}
	if len(out) > 0 {
		r.log.Info("retention done", "deleted", len(out), "total_size", total)
	}
	return out
}

// maintain runs retention and the disk guard every interval until stop.
// The first pass comes one interval after start, so a restart with a new
// policy gives the operator a minute to notice a mistake.
func (r *Recorder) maintain(interval time.Duration) {
	defer close(r.maintDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.EnforceRetention()
		r.guard.check()
	}
}

// sizeUnits are the suffixes ParseSize accepts, decimal and binary.
var sizeUnits = []struct {
	suffix string
	mult   uint64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

// ParseSize reads a byte count: a plain number of bytes, or a number with
// a unit, decimal ("500MB", "10GB", "1.5TB") or binary ("512MiB", "2GiB").
func ParseSize(s string) (uint64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := uint64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*float64(mult) >= math.MaxUint64 {
		return 0, fmt.Errorf("want a size like 500MB, 10GB or 2GiB, got %q", s)
	}
	return uint64(v * float64(mult)), nil
}

// FormatSize writes a byte count in decimal units, as ParseSize reads them
// ("1.5GB"), rounded to two decimals.
func FormatSize(n uint64) string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if n >= u.mult {
			v := strconv.FormatFloat(float64(n)/float64(u.mult), 'f', 2, 64)
			return strings.TrimSuffix(strings.TrimRight(v, "0"), ".") + u.suffix
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// sortOldestFirst orders by end time, oldest first.
func sortOldestFirst(infos []Info) {
	slices.SortFunc(infos, func(a, b Info) int {
		return cmp.Or(endOf(a).Compare(endOf(b)), strings.Compare(a.ID, b.ID))
	})
}

func endOf(in Info) time.Time {
	if !in.End.IsZero() {
		return in.End
	}
	return in.Start.Add(time.Duration(in.DurationMS) * time.Millisecond)
}
