//go:build !linux

package rtc

import (
	"log/slog"

	"github.com/pion/transport/v2"
	"golang.org/x/net/ipv4"
)

// gatherWrites returns c writing through spread descriptors: batched and
// segmented sends are Linux's (sendbatch.go).
func gatherWrites(c transport.UDPConn, _ *slog.Logger) transport.UDPConn { return spreadWrites(c) }

func appendSegmentSize(oob []byte, _ int) []byte { return oob }

func segmentUnsupported(error) bool { return false }

type rawBatch struct{}

func (b *batchConn) writeBatch(msgs []ipv4.Message) (int, error) { return b.out.WriteBatch(msgs, 0) }
