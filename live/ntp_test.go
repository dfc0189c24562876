package live

import (
	"testing"
	"time"
)

// RFC 3550's NTP format: seconds since 1900 in the high word, the fraction
// of a second in units of 1/2^32 s in the low word (half a second is
// 0x80000000, not 500000000 ns as gortsplib v4.16.2 wrote it).
func TestNTPTimestamp(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 500_000_000, time.UTC)
	want := uint64(at.Unix()+2208988800)<<32 | 0x80000000
	if got := NTPTimestamp(at); got != want {
		t.Fatalf("NTPTimestamp(%v) = %#x, want %#x", at, got, want)
	}
	for _, ns := range []int{0, 1, 123_456_789, 999_999_999} {
		in := at.Add(time.Duration(ns - 500_000_000))
		if d := NTPTime(NTPTimestamp(in)).Sub(in); d < -time.Nanosecond || d > time.Nanosecond {
			t.Errorf("%v: back from NTP %v off", in, d)
		}
	}
}
