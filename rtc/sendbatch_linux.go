package rtc

import (
	"errors"
	"log/slog"
	"net"
	"unsafe"

	"github.com/pion/transport/v2"
	"golang.org/x/sys/unix"
)

// gatherWrites returns c sending through a batchConn (sendbatch.go) if it
// is an IPv4 UDP socket, and through spread descriptors otherwise.
func gatherWrites(c transport.UDPConn, log *slog.Logger) transport.UDPConn {
	u, ok := udpOf(c)
	if !ok {
		return c
	}
	if a, isUDP := u.LocalAddr().(*net.UDPAddr); !isUDP || a.IP.To4() == nil {
		return spreadWrites(c)
	}
	return gatherWritesOn(c, u, kernelSegments(u), log)
}

// kernelSegments reports whether the kernel takes UDP_SEGMENT on u (Linux
// 4.18 and later). Whether the device can is known at the first send.
func kernelSegments(u *net.UDPConn) bool {
	raw, err := u.SyscallConn()
	if err != nil {
		return false
	}
	var opErr error
	if err := raw.Control(func(fd uintptr) {
		_, opErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		return false
	}
	return opErr == nil
}

// appendSegmentSize appends the control message that has the kernel cut a
// message into datagrams of seg bytes (the last may be shorter).
func appendSegmentSize(oob []byte, seg int) []byte {
	o := len(oob)
	oob = append(oob, make([]byte, unix.CmsgSpace(2))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[o]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[o+unix.CmsgLen(0)])) = uint16(seg)
	return oob
}

// segmentUnsupported reports whether err says segmenting cannot be done
// here at all: EIO when the device cannot checksum what it segments, and
// the refusals of a kernel without UDP_SEGMENT.
func segmentUnsupported(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}
