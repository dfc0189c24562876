package rtc

import (
	"net"
	"runtime"
	"testing"
)

// A socket nobody reads fills, and the kernel's drops show.
func TestSocketStatsSeeDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel's UDP statistics are read from Linux's /proc")
	}
	in, out := loopback(t)
	if err := in.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	set := &socketSet{}
	set.add(in)
	before, err := set.stats()
	if err != nil {
		t.Fatal(err)
	}
	if before.Queued != 0 || before.Drops != 0 || before.Capacity < 64<<10 {
		t.Fatalf("fresh socket: %+v", before)
	}

	pkt := make([]byte, 1200)
	const sent = 1000 // 1.2 MB into a 128 KB buffer
	for range sent {
		if _, err := out.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	after, err := set.stats()
	if err != nil {
		t.Fatal(err)
	}
	if after.Drops == 0 || after.Drops >= sent {
		t.Errorf("drops %d of %d sent into a full buffer", after.Drops, sent)
	}
	if after.Queued == 0 || after.Queued > after.Capacity {
		t.Errorf("queued %d of a %d-byte buffer", after.Queued, after.Capacity)
	}
	t.Logf("after %d packets: %+v", sent, after)

	// Reading frees the buffer; the drops stay counted.
	buf := make([]byte, 2000)
	for read := 0; uint64(read) < sent-after.Drops; read++ {
		if _, err := in.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	drained, _ := set.stats()
	if drained.Queued != 0 || drained.Drops != after.Drops {
		t.Errorf("drained: %+v, drops before %d", drained, after.Drops)
	}
}

// The engine reports its own socket, which a fresh engine has not
// overflowed.
func TestEngineInputStats(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel's UDP statistics are read from Linux's /proc")
	}
	for _, addr := range []string{"127.0.0.1:0", ":0"} {
		e, err := NewEngine(Config{UDPAddr: addr})
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.InputStats()
		e.Close()
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if st.Capacity == 0 || st.Drops != 0 {
			t.Errorf("%s: %+v", addr, st)
		}
	}
}

func TestAddUDPLines(t *testing.T) {
	table := []byte(`   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0100007F:1FFD 00000000:0000 07 00000000:00000A00 00:00000000 00000000     0        0 4242 2 0000000000000000 17
  101: 00000000:1FFD 00000000:0000 07 00000000:00000100 00:00000000 00000000     0        0 4243 2 0000000000000000 3
  102: 00000000:0035 00000000:0000 07 00000000:00FFFFFF 00:00000000 00000000     0        0 999 2 0000000000000000 1000
  garbage
`)
	var st SocketStats
	n := addUDPLines(&st, table, map[uint64]int{4242: 8192, 4243: 4096})
	if n != 2 || st != (SocketStats{Queued: 0xA00 + 0x100, Capacity: 8192 + 4096, Drops: 20}) {
		t.Fatalf("%d lines, %+v", n, st)
	}
}

// loopback is a UDP socket on 127.0.0.1 and a socket connected to it,
// both closed when tb ends.
func loopback(tb testing.TB) (in, out *net.UDPConn) {
	tb.Helper()
	in, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { in.Close() })
	if out, err = net.DialUDP("udp4", nil, in.LocalAddr().(*net.UDPAddr)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { out.Close() })
	return in, out
}
