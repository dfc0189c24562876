package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// fixZeroDuration gives a file whose frames all sit at 0 ms (a single
// frame, say) one frame's worth of Duration. ebml-go writes Duration as the
// last frame's start, so such a file would say 0, which players show as
// no duration at all. Found by FuzzRecorder.
func (rc *recording) fixZeroDuration() {
	rc.mu.Lock()
	zero := rc.meta.DurationMS == 0
	rc.mu.Unlock()
	if !zero {
		return
	}
	ms := rc.tracks[0].nominalMS
	if err := patchDuration(rc.partPath, float64(ms)); err != nil {
		rc.log.Warn("a recording of one frame has no duration", "error", err)
		return
	}
	rc.mu.Lock()
	rc.meta.DurationMS = ms
	rc.mu.Unlock()
}

// patchDuration overwrites the 8-byte float Duration element of the closed
// Matroska file at path.
func patchDuration(path string, ms float64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var pos int64 = -1
	hook := func(e *ebml.Element) {
		if e.Name == "Duration" && pos < 0 {
			pos = int64(e.Position)
		}
	}
	var doc struct {
		Segment struct {
			Info webm.Info `ebml:"Info"`
		} `ebml:"Segment"`
	}
	// Only called for files whose frames span no time: small to read.
	_ = ebml.Unmarshal(io.LimitReader(f, 64<<20), &doc, ebml.WithIgnoreUnknown(true), ebml.WithElementReadHooks(hook))
	if pos < 0 {
		return errors.New("no Duration element")
	}
	var elem [11]byte
	if _, err := f.ReadAt(elem[:], pos); err != nil || elem[0] != 0x44 || elem[1] != 0x89 || elem[2] != 0x88 {
		return fmt.Errorf("the Duration element at %d is not an 8-byte float", pos)
	}
	binary.BigEndian.PutUint64(elem[3:], math.Float64bits(ms))
	if _, err := f.WriteAt(elem[3:], pos+3); err != nil {
		return err
	}
	return f.Sync()
}
