package live

import "time"

// unixFromNTP is the seconds from the NTP epoch (1900) to Unix's (1970).
const unixFromNTP = 2208988800

// NTPTime converts a 64-bit NTP timestamp (RFC 3550: seconds since 1900
// in the high 32 bits, the fraction of a second in units of 1/2^32 s in
// the low 32) to a time: a Sender Report's, for Stream.WriteSenderReport.
func NTPTime(ntp uint64) time.Time {
	secs := int64(ntp>>32) - unixFromNTP
	frac := int64((ntp & 0xffffffff) * 1e9 >> 32)
	return time.Unix(secs, frac)
}

// NTPTimestamp is t as a 64-bit NTP timestamp (RFC 3550), the inverse of
// NTPTime.
func NTPTimestamp(t time.Time) uint64 {
	secs := uint64(t.Unix() + unixFromNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}
