package meetings

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/reel-gateway/reel/internal/atomicfile"
)

// SchemaVersion is the version of manifest.json's layout.
const SchemaVersion = 1

// Occurrence states.
const (
	StateLive  = "live"  // someone publishes, or may rejoin within the grace
	StateEnded = "ended" // the manifest is final and has its checksum
)

// Manifest is one meeting occurrence, as manifest.json beside its files
// says: who took part when, every recording placed on the occurrence's
// timeline (the gateway's clock, ms after Start), and what happened.
type Manifest struct {
	Schema  int    `json:"schema"`
	Meeting string `json:"meeting"`
	// ID is the occurrence's id, "{meeting}_{UTC start}".
	ID    string `json:"id"`
	State string `json:"state"`
	// Node is the node of a cluster that recorded it.
	Node         string        `json:"node,omitempty"`
	Start        time.Time     `json:"start"`
	End          time.Time     `json:"end,omitzero"`
	DurationMS   int64         `json:"duration_ms"`
	Participants []Participant `json:"participants"`
	Recordings   []Recording   `json:"recordings"`
	Events       []Event       `json:"events"`
	// Exports are the finished exports of the occurrence (files in
	// exports/ beside the recordings), with their checksums.
	Exports []Export `json:"exports,omitempty"`
	// Clip is set in the manifest of a clip (a zip's ?from=&to=) only.
	Clip *ClipInfo `json:"clip,omitempty"`
}

// Participant is one person (stream {meeting}/{name}) and when they were
// present.
type Participant struct {
	Name     string     `json:"name"`
	Sessions []Presence `json:"sessions"`
}

// Presence is one stretch of a participant's presence: from a publish to
// its end. LeaveMS is absent while they are still there.
type Presence struct {
	Join    time.Time `json:"join"`
	JoinMS  int64     `json:"join_offset_ms"`
	Leave   time.Time `json:"leave,omitzero"`
	LeaveMS *int64    `json:"leave_offset_ms,omitempty"`
}

// Recording is one file of the occurrence.
type Recording struct {
	ID          string    `json:"id"`
	File        string    `json:"file"` // relative to the occurrence's folder
	Participant string    `json:"participant"`
	Container   string    `json:"container"`
	State       string    `json:"state"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end,omitzero"`
	DurationMS  int64     `json:"duration_ms"`
	// OffsetMS is where the file's start (its first keyframe) lies on
	// the occurrence's timeline.
	OffsetMS int64   `json:"offset_ms"`
	Bytes    int64   `json:"bytes"`
	SHA256   string  `json:"sha256,omitempty"`
	Tracks   []Track `json:"tracks"`
	Error    string  `json:"error,omitempty"`
	// In a clip's manifest: Source is the recording's own file the clip
	// was cut from; Whole says that MP4 cannot carry its codec (VP8), so
	// the clip holds that file whole and its offset_ms may be negative.
	Source string `json:"source_file,omitempty"`
	Whole  bool   `json:"whole_file,omitempty"`
}

// Track is one track of a recording, and where it begins on the
// occurrence's timeline.
type Track struct {
	Kind     string `json:"kind"`
	Codec    string `json:"codec"`
	OffsetMS int64  `json:"offset_ms"`
}

// Event is something that happened during the occurrence.
type Event struct {
	Time     time.Time `json:"time"`
	OffsetMS int64     `json:"offset_ms"`
	// Type: join, leave, reconnect (a join by someone who had left),
	// loss (a gap in a recording), keyframe_unanswered (the publisher
	// did not send a keyframe it was asked for), recording_deleted.
	Type        string `json:"type"`
	Participant string `json:"participant,omitempty"`
	Kind        string `json:"kind,omitempty"`
	Lost        uint64 `json:"lost,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

// ms is the offset of t on the occurrence's timeline.
func (m *Manifest) ms(t time.Time) int64 { return t.Sub(m.Start).Milliseconds() }

// participant returns the entry of name, adding it if new.
func (m *Manifest) participant(name string) *Participant {
	for i := range m.Participants {
		if m.Participants[i].Name == name {
			return &m.Participants[i]
		}
	}
	m.Participants = append(m.Participants, Participant{Name: name})
	return &m.Participants[len(m.Participants)-1]
}

// recording returns the entry of id, adding it if new.
func (m *Manifest) recording(id string) *Recording {
	for i := range m.Recordings {
		if m.Recordings[i].ID == id {
			return &m.Recordings[i]
		}
	}
	m.Recordings = append(m.Recordings, Recording{ID: id})
	return &m.Recordings[len(m.Recordings)-1]
}

func (m *Manifest) event(e Event) {
	e.Time = e.Time.UTC()
	e.OffsetMS = m.ms(e.Time)
	m.Events = append(m.Events, e)
}

// clone is a deep copy, for readers outside the Manager's lock.
func (m *Manifest) clone() Manifest {
	c := *m
	c.Participants = make([]Participant, len(m.Participants))
	for i, p := range m.Participants {
		p.Sessions = append([]Presence(nil), p.Sessions...)
		c.Participants[i] = p
	}
	c.Recordings = make([]Recording, len(m.Recordings))
	for i, r := range m.Recordings {
		r.Tracks = append([]Track(nil), r.Tracks...)
		c.Recordings[i] = r
	}
	c.Events = append([]Event(nil), m.Events...)
	c.Exports = make([]Export, len(m.Exports))
	for i, e := range m.Exports {
		e.Files = append([]ExportFile(nil), e.Files...)
		c.Exports[i] = e
	}
	if len(c.Exports) == 0 {
		c.Exports = nil
	}
	return c
}

// File names in an occurrence's folder.
const (
	manifestName = "manifest.json"
	checksumName = "manifest.json.sha256"
	holdName     = "hold.json"
)

// write stores m in dir atomically (a temporary file, synced, renamed over
// the old one, the folder synced), so a reader or a crash never sees half
// a manifest. An ended manifest also gets its detached checksum,
// "manifest.json.sha256" in sha256sum's format, so an archive can prove
// nothing changed.
func (m *Manifest) write(dir string) (sum string, err error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding the manifest: %w", err)
	}
	data = append(data, '\n')
	if err := atomicfile.Write(filepath.Join(dir, manifestName), data); err != nil {
		return "", fmt.Errorf("writing the manifest: %w", err)
	}
	sum = sumOf(data)
	if m.State == StateEnded {
		if err := atomicfile.Write(filepath.Join(dir, checksumName), []byte(sum+"  "+manifestName+"\n")); err != nil {
			return "", fmt.Errorf("writing the manifest's checksum: %w", err)
		}
	}
	return sum, nil
}

// sumOf is the hex SHA-256 of data.
func sumOf(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// readManifest reads dir's manifest.
func readManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, manifestName), err)
	}
	if m.ID == "" || m.Meeting == "" {
		return nil, fmt.Errorf("%s has no meeting or id", filepath.Join(dir, manifestName))
	}
	return &m, nil
}
