package e2e

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// clusterMeeting is what the meetings API shows of an occurrence.
type clusterMeeting struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Node     string `json:"node"`
	Archived bool   `json:"archived"`
	Hold     *struct {
		Reason string `json:"reason"`
	} `json:"hold"`
	Participants []string `json:"participants"`
}

// TestClusterMeetings: with S3, a meeting whose participants publish to
// different nodes lands whole on its owner (307), and another node lists
// it, serves its manifest and its zip (and a clip) from the bucket, each
// checked with sha256sum -c. A legal hold set through b makes a DELETE of
// the meeting, and of one of its recordings, through c answer 409 naming
// it, and the bucket's retention (run by c) skip its recordings while it
// deletes an unheld one; the audit on c shows b's hold.
func TestClusterMeetings(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		cannotRun(t, "sha256sum is not installed")
	}
	redis := startRedis(t)
	s3 := startWeed(t)
	grace := []string{"--meetings-grace", "1s"}
	a := startNode(t, "a", redis.URL, s3.URL, grace...)
	b := startNode(t, "b", redis.URL, s3.URL, grace...)
	ctx := ctxTimeout(t, 4*time.Minute)
	se := whipclient.LoopbackSettingEngine()
	opts := whipclient.PublishOptions{Video: "vp8", Audio: true, Duration: 4 * time.Second, SettingEngine: &se}

	alice, err := whipclient.Publish(ctx, a.HTTP+"/whip/room/alice", opts)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := whipclient.Publish(ctx, b.HTTP+"/whip/room/bob", opts) // 307 to a
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(bob.Location, a.HTTP+"/") {
		t.Fatalf("room/bob's session %q, want it on a", bob.Location)
	}
	desk, err := whipclient.Publish(ctx, b.HTTP+"/whip/desk", opts) // a flat stream, unheld
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*whipclient.Publisher{alice, bob, desk} {
		<-p.Done()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var id string
	testwait.Until(t, 30*time.Second, "the meeting to end on a", func() bool {
		var page struct{ Meetings []clusterMeeting }
		getJSON(t, a.HTTP+"/api/v1/meetings?meeting=room", &page)
		if len(page.Meetings) == 1 && page.Meetings[0].State == "ended" && len(page.Meetings[0].Participants) == 2 {
			id = page.Meetings[0].ID
		}
		return id != ""
	})
	for _, n := range []*node{a, b} {
		testwait.Until(t, 60*time.Second, "node "+n.ID+"'s uploads", func() bool {
			return metric(t, n.HTTP, "reel_upload_queue") == 0 && metric(t, n.HTTP, "reel_uploads_total") >= 2
		})
	}

	// b has none of it on disk: all from the bucket.
	var one struct {
		Archived       bool   `json:"archived"`
		ManifestSHA256 string `json:"manifest_sha256"`
		Files          []struct {
			Recording string `json:"recording"`
		} `json:"files"`
	}
	testwait.Until(t, 10*time.Second, "b to find the meeting in the bucket", func() bool {
		res, err := http.Get(b.HTTP + "/api/v1/meetings/" + id)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	getJSON(t, b.HTTP+"/api/v1/meetings/"+id, &one)
	if !one.Archived || one.ManifestSHA256 == "" || len(one.Files) != 2 {
		t.Fatalf("b shows %+v, want the ended meeting from the archive with 2 files", one)
	}
	var page struct {
		Meetings []clusterMeeting
		Warning  string
	}
	getJSON(t, b.HTTP+"/api/v1/meetings?q=room", &page)
	if len(page.Meetings) != 1 || page.Meetings[0].ID != id || !page.Meetings[0].Archived || page.Meetings[0].Node != "a" || page.Warning != "" {
		t.Fatalf("b lists %+v (warning %q), want a's meeting from the archive", page.Meetings, page.Warning)
	}
	if got := downloadSHA(t, b.HTTP+"/api/v1/meetings/"+id+"/manifest.json"); got != one.ManifestSHA256 {
		t.Fatalf("b's manifest.json has sha256 %s, its manifest_sha256 %s", got, one.ManifestSHA256)
	}
	dir := unzipCheck(t, b.HTTP+"/api/v1/meetings/"+id+"/download.zip", id)
	for _, f := range a.recordings(t) {
		if strings.Contains(f, "/room/") {
			if got, want := fileSHA(t, filepath.Join(dir, filepath.Base(f))), fileSHA(t, f); got != want {
				t.Fatalf("%s in b's zip: sha256 %s, a's file %s", filepath.Base(f), got, want)
			}
		}
	}
	unzipCheck(t, b.HTTP+"/api/v1/meetings/"+id+"/download.zip?from=0.5&to=2.5", id)

	// The hold, set through b.
	req, _ := http.NewRequest(http.MethodPut, b.HTTP+"/api/v1/meetings/"+id+"/hold", strings.NewReader(`{"reason":"case 2026-17"}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("PUT hold on b: %d", res.StatusCode)
	}
	testwait.Until(t, 20*time.Second, "b's audit entry uploaded", func() bool { return metric(t, b.HTTP, "reel_upload_queue") == 0 })

	// c starts now, with a retention that every recording so far is
	// past: its first pass over the bucket runs at once.
	c := startNode(t, "c", redis.URL, s3.URL, append(grace, "--recordings-max-age", "2s")...)
	for _, target := range []string{"/api/v1/meetings/" + id, "/api/v1/recordings/" + one.Files[0].Recording} {
		req, _ := http.NewRequest(http.MethodDelete, c.HTTP+target, nil)
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusConflict || !bytes.Contains(body, []byte("case 2026-17")) {
			t.Fatalf("DELETE %s on c: %d %s, want 409 naming the hold", target, res.StatusCode, body)
		}
	}
	var deskID string
	for _, f := range b.recordings(t) {
		if strings.Contains(filepath.Base(f), "desk") {
			deskID = strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		}
	}
	for _, f := range a.recordings(t) {
		if strings.Contains(filepath.Base(f), "desk") {
			deskID = strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		}
	}
	if deskID == "" {
		t.Fatal("no recording of desk on a or b")
	}
	testwait.Until(t, 30*time.Second, "c's retention to delete desk's recording from the bucket", func() bool {
		res, err := http.Get(c.HTTP + "/api/v1/recordings/" + deskID)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusNotFound
	})
	if !strings.Contains(c.Log(), "bucket retention skips a protected recording") {
		t.Fatal("c's log does not say its retention skipped the held meeting's recordings")
	}
	dir = unzipCheck(t, c.HTTP+"/api/v1/meetings/"+id+"/download.zip", id)
	if n := countMedia(t, dir); n != 2 {
		t.Fatalf("the held meeting's zip from c after retention holds %d recordings, want 2", n)
	}
	var audit struct {
		Entries []struct {
			Action string `json:"action"`
			Node   string `json:"node"`
		} `json:"entries"`
	}
	getJSON(t, c.HTTP+"/api/v1/audit?occurrence="+id, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Action != "hold" || audit.Entries[0].Node != "b" {
		t.Fatalf("the audit on c: %+v, want b's hold", audit.Entries)
	}
	getJSON(t, c.HTTP+"/api/v1/meetings?hold=true", &page)
	if len(page.Meetings) != 1 || page.Meetings[0].Hold == nil || page.Meetings[0].Hold.Reason != "case 2026-17" {
		t.Fatalf("c lists held meetings %+v", page.Meetings)
	}

	// S3 gone: the hold can be neither lifted nor deleted around, and
	// says why; back, it is lifted through b and c deletes the meeting
	// (everywhere: a's copy goes at a's next listing).
	s3.stop()
	expect := func(method, url string, status int) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != status || (status == http.StatusServiceUnavailable && (res.Header.Get("Retry-After") == "" || !bytes.Contains(body, []byte("S3")))) {
			t.Fatalf("%s %s: %d %s, want %d", method, url, res.StatusCode, body, status)
		}
	}
	expect(http.MethodDelete, b.HTTP+"/api/v1/meetings/"+id+"/hold?reason=closed", http.StatusServiceUnavailable)
	expect(http.MethodDelete, c.HTTP+"/api/v1/meetings/"+id, http.StatusServiceUnavailable)
	s3.start()
	expect(http.MethodDelete, b.HTTP+"/api/v1/meetings/"+id+"/hold?reason=closed", http.StatusNoContent)
	expect(http.MethodDelete, c.HTTP+"/api/v1/meetings/"+id, http.StatusNoContent)
	expect(http.MethodGet, c.HTTP+"/api/v1/meetings/"+id, http.StatusNotFound)
}

// unzipCheck downloads a meeting's zip, unpacks it, runs sha256sum -c on
// its SHA256SUMS (and manifest.json.sha256 when there is one, not in a
// clip) and returns the folder.
func unzipCheck(t *testing.T, url, id string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	root := t.TempDir()
	for _, f := range zr.File {
		if !strings.HasPrefix(f.Name, id+"/") || strings.Contains(f.Name, "..") {
			t.Fatalf("zip entry %q outside %s/", f.Name, id)
		}
		rc, _ := f.Open()
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(root, id)
	for _, sums := range []string{"SHA256SUMS", "manifest.json.sha256"} {
		if _, err := os.Stat(filepath.Join(dir, sums)); err != nil {
			if sums == "SHA256SUMS" || !strings.Contains(url, "from=") {
				t.Fatalf("%s: no %s in the zip", url, sums)
			}
			continue
		}
		cmd := exec.Command("sha256sum", "--strict", "-c", sums)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: sha256sum -c %s: %v\n%s", url, sums, err, out)
		}
	}
	if n := countMedia(t, dir); n == 0 {
		t.Fatalf("%s holds no recording", url)
	}
	return dir
}

func countMedia(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".webm", ".mkv", ".mp4":
			n++
		}
	}
	return n
}
