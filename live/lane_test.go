package live

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Consumers that share get every packet in order, as many as processors
// share a lane each at most, the API still counts each, and each is told
// of the stream's end after its last packet, its subscription then done.
func TestLaneDeliversInOrderAndEnds(t *testing.T) {
	s := publishTest(t, NewHub(Reject), "cam", nil)
	const consumers, n = 5, 300
	var mu sync.Mutex
	got := make([][]uint16, consumers)
	ended := make([]int, consumers)
	subs := make([]*Subscription, consumers)
	for i := range consumers {
		sub, err := s.Subscribe("whep", &enderFunc{
			write: func(p *Packet) {
				mu.Lock()
				got[i] = append(got[i], p.RTP.SequenceNumber)
				mu.Unlock()
			},
			end: func() { mu.Lock(); ended[i]++; mu.Unlock() },
		}, n)
		if err != nil {
			t.Fatal(err)
		}
		if !sub.Share() || !sub.Shared() {
			t.Fatalf("consumer %d did not move onto a lane", i)
		}
		subs[i] = sub
	}
	if lanes, want := len(s.lanes), min(consumers, runtime.GOMAXPROCS(0)); lanes != want {
		t.Fatalf("%d lanes for %d consumers, want %d", lanes, consumers, want)
	}
	if fan := len(s.fan.load()); fan != len(s.lanes) {
		t.Fatalf("the fan-out has %d queues, want only the %d lanes", fan, len(s.lanes))
	}
	if info := s.Info(); info.Viewers["whep"] != consumers {
		t.Fatalf("API: %d whep viewers, want %d", info.Viewers["whep"], consumers)
	}
	if c := s.Consumers(); len(c) != consumers {
		t.Fatalf("%d consumers listed, want %d", len(c), consumers)
	}
	track := s.Tracks()[0]
	for i := range n {
		if err := s.WriteRTP(track, rtpBytes(t, uint16(i), []byte{1}), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	for i, sub := range subs {
		<-sub.Done()
		mu.Lock()
		if len(got[i]) != n || ended[i] != 1 {
			t.Fatalf("consumer %d: %d of %d packets, told of the end %d times", i, len(got[i]), n, ended[i])
		}
		for j, seq := range got[i] {
			if seq != uint16(j) {
				t.Fatalf("consumer %d: packet %d has seq %d", i, j, seq)
			}
		}
		mu.Unlock()
		if sub.Delivered() != n || sub.Dropped() != 0 || sub.Shed() != 0 {
			t.Fatalf("consumer %d: delivered %d, dropped %d, shed %d", i, sub.Delivered(), sub.Dropped(), sub.Shed())
		}
		sub.Close() // after the end: returns at once
	}
}

// A member that closes is never called again once Close returns, and is
// not told of the end; the lane's other members go on.
func TestLaneMemberCloseStopsDelivery(t *testing.T) {
	s := publishTest(t, NewHub(Reject), "cam", nil)
	var closed, late atomic.Bool
	var quitEnded atomic.Int32
	quit, _ := s.Subscribe("whep", &enderFunc{
		write: func(*Packet) {
			if closed.Load() {
				late.Store(true)
			}
		},
		end: func() { quitEnded.Add(1) },
	}, 64)
	var stay atomic.Int64
	stayed, _ := s.Subscribe("whep", ConsumerFunc(func(*Packet) { stay.Add(1) }), 1024)
	if !quit.Share() || !stayed.Share() {
		t.Fatal("a consumer did not move onto a lane")
	}
	track := s.Tracks()[0]
	const n = 400
	for i := range n {
		_ = s.WriteRTP(track, rtpBytes(t, uint16(i), []byte{1}), time.Now())
		if i == n/2 {
			quit.Close()
			closed.Store(true)
		}
	}
	for stay.Load() < n {
		time.Sleep(time.Millisecond)
	}
	s.Close()
	<-stayed.Done()
	if late.Load() || quitEnded.Load() != 0 {
		t.Fatalf("closed member: called after Close %v, told of the end %d times", late.Load(), quitEnded.Load())
	}
	if info := s.Info(); info.Viewers["whep"] != 1 {
		t.Fatalf("API counts %d whep viewers after one closed, want 1", info.Viewers["whep"])
	}
}

// A lane that cannot keep up sheds for every member alike, and each
// member counts it; a member that joined later counts only what was shed
// after it joined. The stream's totals add the members' counts up.
func TestLaneShedsForEveryMember(t *testing.T) {
	m := newMedia(t)
	m.s.maxLanes = 1 // both on one lane, whatever the processors
	opts := SubscribeOptions{LatencyBudget: testBudget}
	slowC, otherC := blocked(), &got{}
	slow, _ := m.s.SubscribeWith("whep", slowC, opts)
	other, _ := m.s.SubscribeWith("whep", otherC, opts)
	if !slow.Share() || !other.Share() {
		t.Fatal("a consumer did not move onto a lane")
	}
	m.write(0, 1000, []int{0}, func() {})
	<-slowC.entered
	m.write(1000, 2600, []int{2508}, func() {})
	if slow.Shed() == 0 || slow.Shed() != other.Shed() || slow.Dropped() != other.Dropped() {
		t.Fatalf("shed %d and %d, dropped %d and %d: want the same, not 0", slow.Shed(), other.Shed(), slow.Dropped(), other.Dropped())
	}
	late, _ := m.s.SubscribeWith("whep", &got{}, opts)
	if !late.Share() {
		t.Fatal("the late consumer did not move onto a lane")
	}
	if late.lane.Load() != slow.lane.Load() || late.Shed() != 0 {
		t.Fatalf("a member that just joined counts %d shed packets (same lane: %v)", late.Shed(), late.lane.Load() == slow.lane.Load())
	}
	if info := m.s.Info(); info.Shed["whep"] != slow.Shed()+other.Shed()+late.Shed() {
		t.Fatalf("stream info: shed %d, members %d+%d+%d", info.Shed["whep"], slow.Shed(), other.Shed(), late.Shed())
	}
	if n, span := slow.Queued(); span > testBudget {
		t.Fatalf("the lane holds %d packets over %v (budget %v)", n, span, testBudget)
	}
	close(slowC.block)
}

// A member that has left counts nothing more: what the lane sheds after
// is not its loss.
func TestLaneMemberThatLeftCountsNoMore(t *testing.T) {
	m := newMedia(t)
	m.s.maxLanes = 1
	opts := SubscribeOptions{LatencyBudget: testBudget}
	slowC := blocked()
	slow, _ := m.s.SubscribeWith("whep", slowC, opts)
	left, _ := m.s.SubscribeWith("whep", &got{}, opts)
	if !slow.Share() || !left.Share() {
		t.Fatal("a consumer did not move onto a lane")
	}
	left.Close()
	m.write(0, 2600, []int{0, 2508}, func() {}) // slow holds the lane's first pass
	if slow.Shed() == 0 || left.Shed() != 0 || left.Dropped() != 0 {
		t.Fatalf("the lane shed %d; the member that left counts %d shed, %d dropped", slow.Shed(), left.Shed(), left.Dropped())
	}
	close(slowC.block)
}

// Share refuses, and changes nothing, once the subscription has closed
// or the stream has ended.
func TestShareAfterCloseOrEnd(t *testing.T) {
	s := publishTest(t, NewHub(Reject), "cam", nil)
	sub, _ := s.Subscribe("whep", ConsumerFunc(func(*Packet) {}), 8)
	sub.Close()
	if sub.Share() {
		t.Fatal("a closed subscription moved onto a lane")
	}
	ended, _ := s.Subscribe("whep", ConsumerFunc(func(*Packet) {}), 8)
	s.Close()
	<-ended.Done()
	if ended.Share() || len(s.lanes) != 0 {
		t.Fatalf("after the stream ended: shared %v, %d lanes", ended.Shared(), len(s.lanes))
	}
}

// Share, Close and the stream's end, all at once: every subscription
// ends, none is told of the end twice, nothing deadlocks (the race
// detector and the test's deadline watch).
func TestShareRacesCloseAndEnd(t *testing.T) {
	for range 50 {
		s := publishTest(t, NewHub(Reject), "cam", nil)
		track := s.Tracks()[0]
		var wg sync.WaitGroup
		var ends atomic.Int32
		subs := make([]*Subscription, 6)
		for i := range subs {
			subs[i], _ = s.Subscribe("whep", &enderFunc{write: func(*Packet) {}, end: func() { ends.Add(1) }}, 16)
		}
		for i, sub := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sub.Share()
				if i%2 == 0 {
					sub.Close()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				_ = s.WriteRTP(track, rtpBytes(t, uint16(i), []byte{1}), time.Now())
			}
			s.Close()
		}()
		wg.Wait()
		for _, sub := range subs {
			<-sub.Done()
		}
		if e := ends.Load(); e > int32(len(subs)) {
			t.Fatalf("%d end notices for %d subscriptions", e, len(subs))
		}
	}
}

// What queued while a pass ran goes to each member whole before the next
// member: a frame's packets to one viewer are written back to back, so
// the shared socket can send them as one segmented message.
func TestLaneHandsEachMemberTheBurst(t *testing.T) {
	s := publishTest(t, NewHub(Reject), "cam", nil)
	var mu sync.Mutex
	var order []string
	log := func(who string) ConsumerFunc {
		return func(p *Packet) {
			mu.Lock()
			order = append(order, who+itoa(int(p.RTP.SequenceNumber)))
			mu.Unlock()
		}
	}
	hold, entered := make(chan struct{}), make(chan struct{})
	a, _ := s.Subscribe("whep", ConsumerFunc(func(p *Packet) {
		if p.RTP.SequenceNumber == 0 {
			close(entered)
			<-hold
		}
		log("a")(p)
	}), 64)
	b, _ := s.Subscribe("whep", log("b"), 64)
	s.maxLanes = 1
	if !a.Share() || !b.Share() {
		t.Fatal("a consumer did not move onto a lane")
	}
	track := s.Tracks()[0]
	_ = s.WriteRTP(track, rtpBytes(t, 0, []byte{1}), time.Now())
	<-entered // the lane's first pass is held in a's first packet
	for i := 1; i <= 5; i++ {
		_ = s.WriteRTP(track, rtpBytes(t, uint16(i), []byte{1}), time.Now())
	}
	close(hold)
	s.Close()
	<-a.Done()
	<-b.Done()
	want := "a0 b0 a1 a2 a3 a4 a5 b1 b2 b3 b4 b5"
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order of writes: %s, want %s", got, want)
	}
}

// With many members a pass takes fewer packets, at least laneBurstMin:
// the last member waits for one pass of at most about laneWrites writes.
func TestLaneBurstShrinksWithMembers(t *testing.T) {
	s := publishTest(t, NewHub(Reject), "cam", nil)
	s.maxLanes = 1
	const members = 2 * laneWrites / laneBurstMin // the bound is laneBurstMin
	var mu sync.Mutex
	var order []string
	hold, entered := make(chan struct{}), make(chan struct{})
	log := func(who string, p *Packet) {
		if p.RTP.SequenceNumber > 0 {
			mu.Lock()
			order = append(order, who+itoa(int(p.RTP.SequenceNumber)))
			mu.Unlock()
		}
	}
	head, _ := s.Subscribe("whep", ConsumerFunc(func(p *Packet) {
		if p.RTP.SequenceNumber == 0 {
			close(entered)
			<-hold
		}
		log("h", p)
	}), 256)
	next, _ := s.Subscribe("whep", ConsumerFunc(func(p *Packet) { log("n", p) }), 256)
	subs := []*Subscription{head, next}
	for range members - 2 {
		sub, _ := s.Subscribe("whep", ConsumerFunc(func(*Packet) {}), 256)
		subs = append(subs, sub)
	}
	for _, sub := range subs {
		if !sub.Share() {
			t.Fatal("a consumer did not move onto a lane")
		}
	}
	track := s.Tracks()[0]
	_ = s.WriteRTP(track, rtpBytes(t, 0, []byte{1}), time.Now())
	<-entered // the first pass is held in head's first packet
	const queued = 3 * laneBurstMin
	for i := 1; i <= queued; i++ {
		_ = s.WriteRTP(track, rtpBytes(t, uint16(i), []byte{1}), time.Now())
	}
	close(hold)
	s.Close()
	<-next.Done()
	var want []string
	for from := 1; from <= queued; from += laneBurstMin {
		for _, who := range []string{"h", "n"} {
			for i := from; i < from+laneBurstMin; i++ {
				want = append(want, who+itoa(i))
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got, w := strings.Join(order, " "), strings.Join(want, " "); got != w {
		t.Fatalf("order of writes:\n%s\nwant passes of %d packets:\n%s", got, laneBurstMin, w)
	}
}

// writeLayers writes a VP8 frame of each layer every 33 ms over [0, until)
// ms, each a keyframe at 0 and an inter frame after; first runs after the
// frames at 0.
func writeLayers(t *testing.T, s *Stream, layers []*Track, until int, first func()) (written map[*Track]int) {
	t.Helper()
	start := time.Now()
	seq := map[*Track]uint16{}
	written = map[*Track]int{}
	for ms := 0; ms < until; ms += 33 {
		for _, l := range layers {
			payload := []byte{0x10, 0x01, 0xaa}
			if ms == 0 {
				payload = vp8Keyframe(320, 180)
			}
			seq[l]++
			if err := s.WriteRTP(l, layerPacket(t, uint32(l.LayerBit()), seq[l], true, payload), start.Add(time.Duration(ms)*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			written[l]++
		}
		if ms == 0 && first != nil {
			first()
		}
	}
	return written
}

// A lane queues the simulcast layers its members take and no other, and
// follows them as members switch layers, join and leave.
func TestLaneTakesItsMembersLayers(t *testing.T) {
	s, video, _ := publishLayers(t, "q", "h", "f")
	s.maxLanes = 1
	q, h, f := video.LayerByRID("q"), video.LayerByRID("h"), video.LayerByRID("f")
	ac, bc := &got{}, &got{}
	a, _ := s.SubscribeWith("whep", ac, SubscribeOptions{})
	b, _ := s.SubscribeWith("whep", bc, SubscribeOptions{})
	a.SetLayers(q.LayerBit())
	if !a.Share() {
		t.Fatal("a did not move onto a lane")
	}
	b.SetLayers(h.LayerBit()) // before it moves
	if !b.Share() {
		t.Fatal("b did not move onto a lane")
	}
	l := a.lane.Load()
	if got := l.sub.Layers(); got != LayerMask(q, h) {
		t.Fatalf("the lane takes layers %b; want q and h (%b)", got, LayerMask(q, h))
	}
	written := writeLayers(t, s, []*Track{q, h, f}, 330, nil)
	ac.waitFor(written[q])
	bc.waitFor(written[h])
	for l.sub.Delivered() < uint64(written[q]+written[h]) {
		time.Sleep(time.Millisecond)
	}
	if n := l.sub.Delivered(); n != uint64(written[q]+written[h]) {
		t.Fatalf("the lane took %d packets; want %d, q's and h's (f's are nobody's)", n, written[q]+written[h])
	}
	b.SetLayers(f.LayerBit())
	if got := l.sub.Layers(); got != LayerMask(q, f) {
		t.Fatalf("after b switched to f the lane takes %b; want %b", got, LayerMask(q, f))
	}
	b.Close()
	if got := l.sub.Layers(); got != q.LayerBit() {
		t.Fatalf("after b left the lane takes %b; want q's alone (%b)", got, q.LayerBit())
	}
}

// A lane that sheds waits for, and asks, a keyframe of the layers its
// members take, not of every layer the publisher sends: a member's layer
// is not left cut while the lane waits on one nobody forwards.
func TestLaneShedsOnlyItsMembersLayers(t *testing.T) {
	s, video, asked := publishLayers(t, "q", "h", "f")
	s.maxLanes = 1
	q, h, f := video.LayerByRID("q"), video.LayerByRID("h"), video.LayerByRID("f")
	c := blocked()
	sub, _ := s.SubscribeWith("whep", c, SubscribeOptions{LatencyBudget: testBudget})
	sub.SetLayers(h.LayerBit())
	if !sub.Share() {
		t.Fatal("the consumer did not move onto a lane")
	}
	writeLayers(t, s, []*Track{q, h, f}, 2400, func() { <-c.entered })
	close(c.block)
	if sub.Shed() == 0 || len(*asked) != 1 || (*asked)[0] != h {
		t.Fatalf("shed %d, asked for %v; want h's keyframe alone", sub.Shed(), *asked)
	}
}
