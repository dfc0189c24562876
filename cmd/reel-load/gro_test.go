package main

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A light viewer whose socket takes coalesced runs (-gro) cuts a run the
// gateway segmented back into its datagrams, in order, keeps the RTP and
// passes anything else on to pion, as without coalescing.
func TestLightViewerCutsCoalescedRuns(t *testing.T) {
	recv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	if !kernelTimestamps(recv) || !receiveCoalesced(recv) {
		t.Skip("this kernel does not stamp or coalesce UDP datagrams")
	}
	type tapped struct {
		seq  uint16
		size int
	}
	got := make(chan tapped, 16)
	c := &tapConn{UDPConn: recv, udp: recv, oob: make([]byte, 128), big: make([]byte, 1<<16),
		tap: func(b []byte, at int64) {
			if at == 0 {
				t.Error("a datagram without its time")
			}
			got <- tapped{binary.BigEndian.Uint16(b[2:]), len(b)}
		}}

	send, err := net.DialUDP("udp4", nil, recv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	// Four RTP packets, 200 bytes but the last, as one segmented message.
	sizes := []int{200, 200, 200, 120}
	var run []byte
	for i, n := range sizes {
		p := make([]byte, n)
		p[0], p[1] = 0x80, 96
		binary.BigEndian.PutUint16(p[2:], uint16(100+i))
		run = append(run, p...)
	}
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = 200
	if _, _, err := send.WriteMsgUDP(run, oob, nil); err != nil {
		if errors.Is(err, unix.EIO) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOPROTOOPT) {
			t.Skipf("this kernel does not segment UDP: %v", err)
		}
		t.Fatal(err)
	}
	// Then a STUN message, which pion must get.
	stun := make([]byte, 20)
	stun[1] = 0x01
	if _, err := send.Write(stun); err != nil {
		t.Fatal(err)
	}
	_ = recv.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1500)
	n, from, err := c.ReadFrom(b)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(stun) || b[1] != 0x01 || from == nil {
		t.Fatalf("pion got %d bytes (% x) from %v, want the STUN message", n, b[:min(n, 4)], from)
	}
	for i, want := range sizes {
		select {
		case p := <-got:
			if p.seq != uint16(100+i) || p.size != want {
				t.Fatalf("datagram %d: packet %d of %d bytes, want %d of %d", i, p.seq, p.size, 100+i, want)
			}
		default:
			t.Fatalf("only %d of the run's %d datagrams were kept", i, len(sizes))
		}
	}
}

// parseControl reads both control messages a light viewer's read gets, in
// either order, and allocates nothing; a truncated one ends the walk.
func TestParseControl(t *testing.T) {
	ts := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&ts[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SO_TIMESTAMPNS
	h.SetLen(unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))))
	*(*unix.Timespec)(unsafe.Pointer(&ts[unix.CmsgLen(0)])) = unix.NsecToTimespec(1234567890123)
	gro := make([]byte, unix.CmsgSpace(4))
	h = (*unix.Cmsghdr)(unsafe.Pointer(&gro[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	*(*int32)(unsafe.Pointer(&gro[unix.CmsgLen(0)])) = 1216
	for _, c := range []struct {
		oob             []byte
		truncAt, truncS int64 // what is left with the second message cut short
	}{
		{append(append([]byte(nil), ts...), gro...), 1234567890123, 0},
		{append(append([]byte(nil), gro...), ts...), 0, 1216},
	} {
		if at, seg := parseControl(c.oob); at != 1234567890123 || seg != 1216 {
			t.Fatalf("parseControl: %d, %d; want 1234567890123, 1216", at, seg)
		}
		if at, seg := parseControl(c.oob[:len(c.oob)-8]); at != c.truncAt || int64(seg) != c.truncS {
			t.Fatalf("with the second message cut short: %d, %d; want %d, %d", at, seg, c.truncAt, c.truncS)
		}
		if n := testing.AllocsPerRun(100, func() { parseControl(c.oob) }); n != 0 {
			t.Fatalf("parseControl allocates %.0f times", n)
		}
	}
	if at, seg := parseControl(nil); at != 0 || seg != 0 {
		t.Fatal("an empty control buffer gave values")
	}
}
