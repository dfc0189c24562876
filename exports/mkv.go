package exports

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// mkvTrack is a TrackEntry with what a player shows: the participant's
// name, a language ("und": none is known) and the default flag.
type mkvTrack struct {
	Name         string      `ebml:"Name,omitempty"`
	TrackNumber  uint64      `ebml:"TrackNumber"`
	TrackUID     uint64      `ebml:"TrackUID"`
	FlagDefault  uint64      `ebml:"FlagDefault"`
	FlagLacing   uint64      `ebml:"FlagLacing"`
	Language     string      `ebml:"Language"`
	CodecID      string      `ebml:"CodecID"`
	CodecPrivate []byte      `ebml:"CodecPrivate,omitempty"`
	CodecDelay   uint64      `ebml:"CodecDelay,omitempty"`
	SeekPreRoll  uint64      `ebml:"SeekPreRoll,omitempty"`
	TrackType    uint64      `ebml:"TrackType"`
	Audio        *webm.Audio `ebml:"Audio,omitempty"`
	Video        *webm.Video `ebml:"Video,omitempty"`
}

type mkvInfo struct {
	TimecodeScale uint64    `ebml:"TimecodeScale"`
	Title         string    `ebml:"Title,omitempty"`
	MuxingApp     string    `ebml:"MuxingApp"`
	WritingApp    string    `ebml:"WritingApp"`
	Duration      float64   `ebml:"Duration"`
	DateUTC       time.Time `ebml:"DateUTC"`
}

type mkvSeek struct {
	SeekID       []byte `ebml:"SeekID"`
	SeekPosition uint64 `ebml:"SeekPosition,size=8"`
}

type mkvCluster struct {
	Timecode    uint64       `ebml:"Timecode"`
	SimpleBlock []ebml.Block `ebml:"SimpleBlock"`
}

const (
	// A cluster is cut at a video keyframe once it is this long, and in
	// any case at clusterMaxMS: SimpleBlock times are 16-bit offsets from
	// the cluster's.
	clusterMinMS = 500
	clusterMaxMS = 2000
)

// mkvWriter writes a Matroska file with ebml-go, laid out as mkvmerge
// does: EBML header, Segment, SeekHead, Info (with Duration), Tracks,
// Clusters of SimpleBlocks, then Cues (every video keyframe; every
// cluster when there is no video). The Segment's size, the Cues' place
// and the Duration are written last, in place. Unlike ebml-go's
// mkvcore, the file's time 0 is the caller's, not the first frame's, so
// a track that begins later starts later.
type mkvWriter struct {
	f   *os.File
	w   *bufio.Writer
	off int64 // file offset of what is written next

	segDataAt  int64 // where the Segment's data begins
	segSizeAt  int64 // the Segment's 8-byte size
	cuesPosAt  int64 // the Cues' 8-byte SeekPosition
	durationAt int64 // Info's 8-byte Duration

	video   map[uint64]bool
	cluster mkvCluster
	open    bool
	keys    []uint64 // video tracks with a keyframe in the cluster, by block
	keyTS   []int64
	cues    []webm.CuePoint
	lastMS  int64
	dropped int
}

// newMKVWriter creates path and writes the header for tracks.
func newMKVWriter(path, docType, title string, date time.Time, tracks []mkvTrack) (*mkvWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	m := &mkvWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), video: map[uint64]bool{}}
	for _, t := range tracks {
		if t.TrackType == 1 {
			m.video[t.TrackNumber] = true
		}
	}
	if err := m.header(docType, title, date, tracks); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the Matroska header: %w", err)
	}
	return m, nil
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	err := ebml.Marshal(v, &b)
	return b.Bytes(), err
}

func (m *mkvWriter) header(docType, title string, date time.Time, tracks []mkvTrack) error {
	head, err := marshal(&struct {
		H webm.EBMLHeader `ebml:"EBML"`
	}{webm.EBMLHeader{EBMLVersion: 1, EBMLReadVersion: 1, EBMLMaxIDLength: 4, EBMLMaxSizeLength: 8,
		DocType: docType, DocTypeVersion: 4, DocTypeReadVersion: 2}})
	if err != nil {
		return err
	}
	info, err := marshal(&struct {
		I mkvInfo `ebml:"Info"`
	}{mkvInfo{TimecodeScale: uint64(time.Millisecond), Title: title, MuxingApp: "Reel (ebml-go)", WritingApp: "Reel meeting export",
		Duration: 1, DateUTC: date.UTC()}})
	if err != nil {
		return err
	}
	durAt := bytes.Index(info, []byte{0x44, 0x89, 0x88})
	if durAt < 0 {
		return errors.New("no 8-byte Duration in Info")
	}
	trk, err := marshal(&struct {
		T struct {
			E []mkvTrack `ebml:"TrackEntry"`
		} `ebml:"Tracks"`
	}{struct {
		E []mkvTrack `ebml:"TrackEntry"`
	}{tracks}})
	if err != nil {
		return err
	}
	seekHead := func(info, tracks uint64) ([]byte, error) {
		return marshal(&struct {
			S struct {
				Seek []mkvSeek `ebml:"Seek"`
			} `ebml:"SeekHead"`
		}{struct {
			Seek []mkvSeek `ebml:"Seek"`
		}{[]mkvSeek{
			{ebml.ElementInfo.Bytes(), info},
			{ebml.ElementTracks.Bytes(), tracks},
			{ebml.ElementCues.Bytes(), 0}, // last: its 8 bytes end the SeekHead
		}}})
	}
	sh, err := seekHead(0, 0)
	if err != nil {
		return err
	}
	sh, err = seekHead(uint64(len(sh)), uint64(len(sh)+len(info)))
	if err != nil {
		return err
	}
	segment := []byte{0x18, 0x53, 0x80, 0x67, 0x01, 0, 0, 0, 0, 0, 0, 0} // size written at the end
	m.write(head)
	m.segSizeAt = m.off + 4
	m.write(segment)
	m.segDataAt = m.off
	m.cuesPosAt = m.off + int64(len(sh)) - 8
	m.write(sh)
	m.durationAt = m.off + int64(durAt) + 3
	m.write(info)
	m.write(trk)
	return m.flushErr()
}

func (m *mkvWriter) write(b []byte) {
	n, _ := m.w.Write(b) // bufio keeps the first error; flushErr reports it
	m.off += int64(n)
}

func (m *mkvWriter) flushErr() error { return m.w.Flush() }

// WriteFrame adds a frame of track at ms on the file's timeline. Frames
// come in time order across tracks (a frame a little older than the
// cluster is allowed: its offset is negative).
func (m *mkvWriter) WriteFrame(track uint64, keyframe bool, ms int64, data []byte) error {
	if ms < 0 {
		m.dropped++
		return nil
	}
	if m.open {
		d := ms - int64(m.cluster.Timecode)
		if d >= clusterMaxMS || (keyframe && m.video[track] && d >= clusterMinMS) {
			if err := m.flushCluster(); err != nil {
				return err
			}
		} else if d <= -math.MaxInt16 {
			m.dropped++
			return nil
		}
	}
	if !m.open {
		m.cluster = mkvCluster{Timecode: uint64(ms)}
		m.open = true
	}
	m.cluster.SimpleBlock = append(m.cluster.SimpleBlock, ebml.Block{TrackNumber: track, Keyframe: keyframe,
		Timecode: int16(ms - int64(m.cluster.Timecode)), Data: [][]byte{data}})
	if keyframe && (m.video[track] || (len(m.video) == 0 && len(m.cluster.SimpleBlock) == 1)) {
		m.keys = append(m.keys, track)
		m.keyTS = append(m.keyTS, ms)
	}
	m.lastMS = max(m.lastMS, ms)
	return nil
}

func (m *mkvWriter) flushCluster() error {
	if !m.open {
		return nil
	}
	pos := uint64(m.off - m.segDataAt)
	b, err := marshal(&struct {
		C mkvCluster `ebml:"Cluster"`
	}{m.cluster})
	if err != nil {
		return fmt.Errorf("writing a cluster: %w", err)
	}
	m.write(b)
	for i, track := range m.keys {
		ms := uint64(m.keyTS[i])
		pt := webm.CueTrackPosition{CueTrack: track, CueClusterPosition: pos}
		if n := len(m.cues); n > 0 && m.cues[n-1].CueTime == ms {
			m.cues[n-1].CueTrackPositions = append(m.cues[n-1].CueTrackPositions, pt)
			continue
		}
		m.cues = append(m.cues, webm.CuePoint{CueTime: ms, CueTrackPositions: []webm.CueTrackPosition{pt}})
	}
	m.open, m.keys, m.keyTS = false, m.keys[:0], m.keyTS[:0]
	return nil
}

// Close writes the last cluster and the Cues, and the Segment's size, the
// Cues' position and durationMS in place, then syncs and closes the file.
func (m *mkvWriter) Close(durationMS int64) error {
	err := m.flushCluster()
	if err == nil && len(m.cues) > 0 {
		slices.SortStableFunc(m.cues, func(a, b webm.CuePoint) int { return int(int64(a.CueTime) - int64(b.CueTime)) })
		cuesAt := m.off - m.segDataAt
		var b []byte
		if b, err = marshal(&struct {
			C webm.Cues `ebml:"Cues"`
		}{webm.Cues{CuePoint: m.cues}}); err == nil {
			m.write(b)
			err = m.patchUint(m.cuesPosAt, uint64(cuesAt))
		}
	}
	if err == nil {
		err = m.flushErr()
	}
	if err == nil {
		size := uint64(m.off - m.segDataAt)
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], size|0x01<<56)
		_, err = m.f.WriteAt(b[:], m.segSizeAt)
	}
	if err == nil {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], math.Float64bits(float64(max(durationMS, m.lastMS))))
		_, err = m.f.WriteAt(b[:], m.durationAt)
	}
	if err == nil {
		err = m.f.Sync()
	}
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// patchUint writes v as the 8 bytes at off, which may still be buffered.
func (m *mkvWriter) patchUint(off int64, v uint64) error {
	if err := m.flushErr(); err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	_, err := m.f.WriteAt(b[:], off)
	return err
}

// abort closes and leaves the file to the caller to remove.
func (m *mkvWriter) abort() { m.f.Close() }
