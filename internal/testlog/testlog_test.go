package testlog

import (
	"bytes"
	"testing"
)

// The writer ends with its test, after the cleanups registered later.
func TestWriterEndsWithItsTest(t *testing.T) {
	var w *endingWriter
	loggedInCleanup := false
	t.Run("inner", func(t *testing.T) {
		w = newWriter(t)
		t.Cleanup(func() {
			w.mu.Lock()
			loggedInCleanup = w.w != nil // a later cleanup may still log
			w.mu.Unlock()
		})
	})
	if !loggedInCleanup {
		t.Error("the writer ended before a cleanup registered after it")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.w != nil {
		t.Error("the writer still writes to the test's output after the test ended")
	}
}

func TestEndingWriterDropsAfterEnd(t *testing.T) {
	var buf bytes.Buffer
	w := &endingWriter{w: &buf}
	if n, err := w.Write([]byte("kept ")); n != 5 || err != nil {
		t.Fatal(n, err)
	}
	w.end()
	if n, err := w.Write([]byte("dropped")); n != 7 || err != nil {
		t.Fatal(n, err)
	}
	if buf.String() != "kept " {
		t.Fatalf("wrote %q", buf.String())
	}
}
