//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64 || mips64 || mips64le)

package rtc

import (
	"encoding/binary"
	"net"
	"syscall"
	"time"

	"github.com/pion/transport/v2"
)

// timedConn reads with each packet's kernel arrival time and notes how
// long it waited. pion's UDP mux reads a socket from one goroutine, so
// the control-message buffer is that reader's.
type timedConn struct {
	transport.UDPConn
	udp *net.UDPConn
	oob []byte
	lag *readLag
}

// cmsgTimespec is the size of a control message holding a timespec on a
// 64-bit kernel: its header (length, level, type) and the two int64s.
const (
	cmsgHeader   = 16
	cmsgTimespec = cmsgHeader + 16
)

// timeReads returns c reading with kernel timestamps noted in lag, or c
// itself if it is no UDP socket or the kernel will not stamp.
func timeReads(c transport.UDPConn, lag *readLag) transport.UDPConn {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return c
	}
	raw, err := u.SyscallConn()
	if err != nil {
		return c
	}
	var opErr error
	if err := raw.Control(func(fd uintptr) {
		opErr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || opErr != nil {
		return c
	}
	return &timedConn{UDPConn: c, udp: u, oob: make([]byte, 2*cmsgTimespec), lag: lag}
}

func (t *timedConn) rawUDP() *net.UDPConn { return t.udp }

// ReadFrom reads one packet and notes its wait in the socket.
func (t *timedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, oobn, _, addr, err := t.udp.ReadMsgUDP(b, t.oob)
	if err != nil {
		return n, nil, err // as UDPConn.ReadFrom: no address with an error
	}
	if at, ok := kernelTime(t.oob[:oobn]); ok {
		if d := time.Since(at); d > 0 && d < time.Hour { // a clock step is no wait
			t.lag.note(d)
		}
	}
	return n, addr, nil
}

// kernelTime finds the SCM_TIMESTAMPNS message in oob.
func kernelTime(oob []byte) (time.Time, bool) {
	for len(oob) >= cmsgHeader {
		l := int(binary.NativeEndian.Uint64(oob))
		level := int32(binary.NativeEndian.Uint32(oob[8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:]))
		if l < cmsgHeader || l > len(oob) {
			return time.Time{}, false
		}
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && l >= cmsgTimespec {
			sec := int64(binary.NativeEndian.Uint64(oob[cmsgHeader:]))
			nsec := int64(binary.NativeEndian.Uint64(oob[cmsgHeader+8:]))
			return time.Unix(sec, nsec), true
		}
		oob = oob[(l+7)&^7:] // messages are 8-byte aligned
	}
	return time.Time{}, false
}
