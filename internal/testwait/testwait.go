// Package testwait waits, in tests, for something another goroutine does:
// a count a sender updates after its system call returns, a viewer that
// connects, a file that appears. It polls the condition every 20 ms and
// fails the test with what it waited for once the time is up.
package testwait

import (
	"testing"
	"time"
)

// Until polls cond until it holds, and fails tb if it does not within
// the given time.
func Until(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", within, what)
		}
	}
}
