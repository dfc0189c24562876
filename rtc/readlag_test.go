package rtc

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pion/transport/v2"

	"github.com/reel-gateway/reel/internal/testwait"
)

// The read lag is how long packets waited in the socket, not how long
// they took to come: a packet read 300 ms after it arrived waited 300 ms.
func TestReadLagIsTheSocketWait(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("kernel timestamps are read on Linux")
	}
	in, out := loopback(t)
	set := &socketSet{}
	c := set.open(in)
	defer c.Close()
	if _, ok := c.(*batchConn); !ok {
		t.Fatalf("the socket's writes are not gathered: %T", c)
	}
	buf := make([]byte, 1500)
	read := func(want string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, addr, err := c.ReadFrom(buf)
		if err != nil || string(buf[:n]) != want || addr.String() != out.LocalAddr().String() {
			t.Fatalf("read %q from %v: %v", buf[:n], addr, err)
		}
	}
	if _, known := set.lag.take(); known {
		t.Fatal("a lag is known before any read")
	}
	// The kernel turns arrival stamps on for the whole system a moment
	// after the first socket asks (net_enable_timestamp defers it); a
	// packet that came before then is stamped as it is read. Wait for it.
	testwait.Until(t, 5*time.Second, "the kernel to stamp arrivals", func() bool {
		if _, err := out.Write([]byte("warm")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		read("warm")
		lag, _ := set.lag.take()
		return lag >= 25*time.Millisecond
	})
	for _, p := range []string{"one", "two"} {
		if _, err := out.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	read("one")
	read("two")
	lag, known := set.lag.take()
	if !known || lag < 290*time.Millisecond || lag > 2*time.Second {
		t.Fatalf("packets read 300 ms after they came: lag %v (known %v)", lag, known)
	}
	if _, err := out.Write([]byte("three")); err != nil {
		t.Fatal(err)
	}
	read("three")
	if lag, _ := set.lag.take(); lag > 100*time.Millisecond {
		t.Errorf("a packet read as it came waited %v", lag)
	}
	if st, err := set.stats(); err != nil || !st.ReadLagKnown {
		t.Errorf("stats %+v, %v", st, err)
	}
	// Its writes leave through the same socket.
	if _, err := c.WriteTo([]byte("back"), out.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = out.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := out.Read(buf); err != nil || string(buf[:n]) != "back" {
		t.Fatalf("read %q: %v", buf[:n], err)
	}
	// The sender counts once its system call has returned, which may be
	// after the packet has been read here.
	testwait.Until(t, 5*time.Second, "the send to be counted", func() bool { return set.sendStats().Packets > 0 })
	if st := set.sendStats(); !st.Batched || st.Packets != 1 || st.Messages != 1 || st.Failed != 0 {
		t.Errorf("send stats %+v, want one packet in one message", st)
	}
}

// A read deadline's timeout comes through as the error it is.
func TestTimedReadTimeout(t *testing.T) {
	in, _ := loopback(t)
	var c transport.UDPConn = timeReads(in, &readLag{})
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, addr, err := c.ReadFrom(make([]byte, 10))
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() || addr != nil {
		t.Fatalf("addr %v (%T), err %v", addr, addr, err)
	}
}

// BenchmarkSocketRead: one 1200-byte packet written to and read from a
// loopback socket, as pion's mux reads it, plain and with the kernel's
// timestamp noted (the cost the read lag adds to every packet received).
func BenchmarkSocketRead(b *testing.B) {
	for _, timed := range []bool{false, true} {
		name := "plain"
		if timed {
			name = "timed"
		}
		b.Run(name, func(b *testing.B) {
			in, out := loopback(b)
			var c transport.UDPConn = in
			if timed {
				c = timeReads(in, &readLag{})
			}
			pkt, buf := make([]byte, 1200), make([]byte, 1500)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := out.Write(pkt); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.ReadFrom(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
