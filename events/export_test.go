package events

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/reel-gateway/reel/exports"
)

// A done job is export.finished, anything else export.failed; the body
// carries the job (its files, or the error) and its URL.
func TestFromExport(t *testing.T) {
	done := FromExport(exports.Job{ID: "m_1.multitrack", Meeting: "m", State: exports.Done,
		Files: []exports.File{{Name: "m_1.multitrack.mkv", SHA256: "ab"}}})
	failed := FromExport(exports.Job{ID: "m_1.composite", Meeting: "m", State: exports.Failed, Error: "ffmpeg failed"})
	if done.Type != ExportFinished || failed.Type != ExportFailed || done.Stream != "m" {
		t.Fatalf("types %s, %s; stream %q", done.Type, failed.Type, done.Stream)
	}
	body, _ := json.Marshal(done)
	for _, want := range []string{`"type":"export.finished"`, `"url":"/api/v1/exports/m_1.multitrack"`, `"sha256":"ab"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("%s lacks %s", body, want)
		}
	}
	if body, _ := json.Marshal(failed); !strings.Contains(string(body), `"error":"ffmpeg failed"`) {
		t.Errorf("%s lacks the error", body)
	}
}
