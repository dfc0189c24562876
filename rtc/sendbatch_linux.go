package rtc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"unsafe"

	"github.com/pion/transport/v2"
	"golang.org/x/net/ipv4"
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

// The batch leaves in sendmmsg calls made here rather than through
// x/net's WriteBatch, for two reasons the 500-viewer profile showed:
//
//   - The call is made raw (no entersyscall): the socket is non-blocking,
//     so the kernel returns as soon as it has taken what it can, and a
//     full socket waits in the poller as any write does. Through the
//     runtime's syscall path a call of tens of microseconds on a busy
//     machine had its P taken by sysmon and handed to another thread,
//     and the sender's thread then parked: two context switches per call,
//     and sysmon kept polling every 20 µs.
//   - The kernel's structures are built once per batch in memory reused
//     from batch to batch, with no per-message address marshalling.
//
// A call carries at most rawCallMessages messages, which bounds how long
// the sender holds its P (and a stop-the-world waits) to well under a
// millisecond.
const rawCallMessages = 256

// mmsghdr is struct mmsghdr on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// rawBatch is the kernel's form of the messages of one call.
type rawBatch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
}

// writeBatch sends the first messages of msgs (up to rawCallMessages) in
// one sendmmsg and returns how many the kernel took. As sendmmsg does, it
// returns an error only when the first message is refused.
func (b *batchConn) writeBatch(msgs []ipv4.Message) (int, error) {
	msgs = msgs[:min(len(msgs), rawCallMessages)]
	r := &b.raw
	iovs := 0
	for _, m := range msgs {
		iovs += len(m.Buffers)
	}
	r.hdrs = slices.Grow(r.hdrs[:0], len(msgs))[:len(msgs)]
	r.iovs = slices.Grow(r.iovs[:0], iovs)[:iovs]
	r.names = slices.Grow(r.names[:0], len(msgs))[:len(msgs)]
	iov := 0
	for i, m := range msgs {
		ua, ok := m.Addr.(*net.UDPAddr)
		var ip netip.Addr
		if ok {
			ip, _ = netip.AddrFromSlice(ua.IP)
			ip = ip.Unmap()
		}
		if !ip.Is4() {
			if i == 0 {
				return 0, fmt.Errorf("sending to %v from an IPv4 socket: %w", m.Addr, unix.EAFNOSUPPORT)
			}
			r.hdrs = r.hdrs[:i] // the next call refuses it on its own
			break
		}
		name := &r.names[i]
		name.Family = unix.AF_INET
		name.Port = uint16(ua.Port)<<8 | uint16(ua.Port)>>8
		name.Addr = ip.As4()
		h := &r.hdrs[i]
		*h = mmsghdr{}
		h.hdr.Name = (*byte)(unsafe.Pointer(name))
		h.hdr.Namelen = unix.SizeofSockaddrInet4
		first := iov
		for _, p := range m.Buffers {
			r.iovs[iov] = unix.Iovec{Base: unsafe.SliceData(p), Len: uint64(len(p))}
			iov++
		}
		h.hdr.Iov = &r.iovs[first]
		h.hdr.Iovlen = uint64(iov - first)
		if len(m.OOB) > 0 {
			h.hdr.Control = &m.OOB[0]
			h.hdr.Controllen = uint64(len(m.OOB))
		}
	}
	var sent int
	var errno syscall.Errno
	err := b.rc.Write(func(fd uintptr) bool {
		for {
			n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
			switch e {
			case 0:
				sent = int(n)
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait until the socket has room
			}
			errno = e
			return true
		}
	})
	if err != nil {
		return sent, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("sendmmsg", errno)
	}
	if sent == 0 { // never for a non-empty batch; the caller would spin
		return 0, errors.New("sendmmsg took no message and gave no error")
	}
	return sent, nil
}
