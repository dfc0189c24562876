//go:build !linux

package rtc

import (
	"log/slog"

	"github.com/pion/transport/v2"
)

// gatherWrites returns c writing through spread descriptors: batched and
// segmented sends are Linux's (sendbatch.go).
func gatherWrites(c transport.UDPConn, _ *slog.Logger) transport.UDPConn { return spreadWrites(c) }

func appendSegmentSize(oob []byte, _ int) []byte { return oob }

func segmentUnsupported(error) bool { return false }
