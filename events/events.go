// Package events tells other systems what happens in Reel: a publish
// starting or stopping, a recording finishing, a meeting starting or
// ending and an export finishing or failing are logged and POSTed as
// HMAC-signed JSON to the configured webhooks, retried with backoff by one
// delivery goroutine behind a bounded queue.
package events

import (
	"time"

	"github.com/reel-gateway/reel/exports"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
)

// Type names an event; it is the "type" field of the JSON body and the
// X-Reel-Event header.
type Type string

// The events Reel emits.
const (
	PublishStarted    Type = "publish.started"
	PublishStopped    Type = "publish.stopped"
	RecordingFinished Type = "recording.finished"
	MeetingStarted    Type = "meeting.started"
	MeetingEnded      Type = "meeting.ended"
	ExportFinished    Type = "export.finished"
	ExportFailed      Type = "export.failed"
)

// Event is one webhook body.
type Event struct {
	// ID is unique per event; receivers use it to drop a redelivery.
	ID   string    `json:"id"`
	Type Type      `json:"type"`
	Time time.Time `json:"time"`
	// Stream is the live stream's name.
	Stream string `json:"stream"`
	// Data is PublishData for publish events and RecordingData for
	// recording.finished.
	Data any `json:"data,omitempty"`
}

// Track is one track of a publication.
type Track struct {
	Kind  string `json:"kind"`
	Codec string `json:"codec"`
}

// PublishData is the data of publish.started and publish.stopped.
type PublishData struct {
	Session  string    `json:"session"`
	Protocol string    `json:"protocol"`
	Remote   string    `json:"remote,omitempty"`
	Started  time.Time `json:"started"`
	Tracks   []Track   `json:"tracks"`
	// DurationMS, Bytes and Packets are set by publish.stopped.
	DurationMS int64  `json:"duration_ms,omitempty"`
	Bytes      uint64 `json:"bytes,omitempty"`
	Packets    uint64 `json:"packets,omitempty"`
}

// RecordingData is the data of recording.finished: the recording's
// metadata as the recordings API shows it, and where to fetch the file.
type RecordingData struct {
	recorder.Info
	// URL is the file's path on Reel's HTTP server.
	URL string `json:"url"`
}

// FromPublish is the publish.started event for a stream that just went live.
func FromPublish(info live.StreamInfo) Event {
	return Event{Type: PublishStarted, Stream: info.Name, Data: publishData(info)}
}

// FromUnpublish is the publish.stopped event for a stream that has ended.
func FromUnpublish(info live.StreamInfo) Event {
	d := publishData(info)
	d.DurationMS = time.Since(info.Started).Milliseconds()
	for _, t := range info.Tracks {
		d.Bytes += t.Bytes
		d.Packets += t.Packets
	}
	return Event{Type: PublishStopped, Stream: info.Name, Data: d}
}

// FromRecording is the recording.finished event; Data.State says whether
// the recording finished or failed.
func FromRecording(info recorder.Info) Event {
	return Event{Type: RecordingFinished, Stream: info.Stream,
		Data: RecordingData{Info: info, URL: "/api/v1/recordings/" + info.ID + "/file"}}
}

// MeetingData is the data of meeting.started and meeting.ended.
type MeetingData struct {
	Meeting      string    `json:"meeting"`
	Occurrence   string    `json:"occurrence"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end,omitzero"`
	DurationMS   int64     `json:"duration_ms,omitempty"`
	Participants []string  `json:"participants"`
	Recordings   int       `json:"recordings"`
	// ManifestURL is the occurrence's manifest on Reel's HTTP server;
	// ManifestSHA256, set by meeting.ended, is the SHA-256 of the final
	// manifest.json (as manifest.json.sha256 says).
	ManifestURL    string `json:"manifest_url"`
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
}

// FromMeeting is the meeting.started (kind meetings.Started) or
// meeting.ended event of an occurrence.
func FromMeeting(kind string, m meetings.Manifest, sha256 string) Event {
	d := MeetingData{Meeting: m.Meeting, Occurrence: m.ID, Start: m.Start, End: m.End, DurationMS: m.DurationMS,
		Participants: []string{}, Recordings: len(m.Recordings),
		ManifestURL: "/api/v1/meetings/" + m.ID + "/manifest.json", ManifestSHA256: sha256}
	for _, p := range m.Participants {
		d.Participants = append(d.Participants, p.Name)
	}
	typ := MeetingStarted
	if kind == meetings.Ended {
		typ = MeetingEnded
	} else {
		d.ManifestSHA256 = ""
	}
	return Event{Type: typ, Stream: m.Meeting, Data: d}
}

// ExportData is the data of export.finished and export.failed: the job as
// GET /api/v1/exports/{job} shows it (state, files with their sha256, or
// the error), and where to get it.
type ExportData struct {
	exports.Job
	URL string `json:"url"`
}

// FromExport is export.finished for a job that is done, export.failed for
// one that failed.
func FromExport(j exports.Job) Event {
	typ := ExportFinished
	if j.State != exports.Done {
		typ = ExportFailed
	}
	return Event{Type: typ, Stream: j.Meeting, Data: ExportData{Job: j, URL: "/api/v1/exports/" + j.ID}}
}

func publishData(info live.StreamInfo) PublishData {
	d := PublishData{Session: info.Session, Protocol: info.Protocol, Remote: info.Remote,
		Started: info.Started.UTC(), Tracks: []Track{}}
	for _, t := range info.Tracks {
		d.Tracks = append(d.Tracks, Track{Kind: string(t.Kind), Codec: string(t.Codec)})
	}
	return d
}
