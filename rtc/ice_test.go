package rtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// answeredSession answers offer on an engine that accepts max remote
// candidates; the error is Answer's.
func answeredSession(t *testing.T, max int, offer string) (*Session, error) {
	t.Helper()
	e, err := NewEngine(Config{UDPAddr: "127.0.0.1:0", MaxCandidates: max})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	sdp, _, me, err := NegotiatePublisher([]byte(offer), DefaultPreferences())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := e.NewPeerConnection(me)
	if err != nil {
		t.Fatal(err)
	}
	s := e.NewSession(pc, slog.New(slog.DiscardHandler))
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = s.Answer(ctx, sdp)
	return s, err
}

func testOffer(extraCandidates int) string {
	o := strings.ReplaceAll(strings.ReplaceAll(obsOffer("42e01f", "1"), "PM", "1"), "\n", "\r\n")
	var b strings.Builder
	for i := range extraCandidates {
		fmt.Fprintf(&b, "a=candidate:%d 1 UDP 2122317823 127.0.0.1 %d typ host\r\n", i+10, 40000+i)
	}
	// The same candidate again in the second media section, as browsers
	// and pion write it: it counts once.
	b.WriteString("a=candidate:1 1 UDP 2122317823 127.0.0.1 53711 typ host\r\n")
	return strings.Replace(o, "a=mid:1\r\n", "a=mid:1\r\n"+b.String(), 1)
}

func trickle(n, from int) []byte {
	var b strings.Builder
	b.WriteString("a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n")
	for i := range n {
		fmt.Fprintf(&b, "a=candidate:%d 1 udp 2122317823 127.0.0.1 %d typ host\r\n", from+i, 41000+from+i)
	}
	return []byte(b.String())
}

// Remote candidates are capped per session: an offer over the cap is
// refused before anything is sent to its addresses, trickled candidates
// count on, and an ICE restart starts a new generation that replaces the
// old one's count.
func TestRemoteCandidateCap(t *testing.T) {
	var ce *CandidateLimitError
	if _, err := answeredSession(t, 3, testOffer(3)); !errors.As(err, &ce) || ce.Count != 4 || ce.Max != 3 {
		t.Fatalf("offer with 4 distinct candidates, cap 3: %v", err)
	}
	s, err := answeredSession(t, 3, testOffer(1)) // 2 distinct
	if err != nil {
		t.Fatalf("offer within the cap: %v", err)
	}
	ctx := context.Background()
	if _, _, err := s.Patch(ctx, "*", trickle(1, 0)); err != nil {
		t.Fatalf("third candidate: %v", err)
	}
	if _, _, err := s.Patch(ctx, "*", trickle(1, 0)); err != nil {
		t.Fatalf("the same candidate again: %v", err)
	}
	if _, _, err := s.Patch(ctx, "*", trickle(1, 1)); !errors.As(err, &ce) || ce.Count != 4 {
		t.Fatalf("fourth candidate: %v, want a CandidateLimitError", err)
	}
	restart := "a=ice-ufrag:newU\r\na=ice-pwd:newpasswordnewpassword12\r\n" + string(trickle(3, 10))[len("a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"):]
	if _, _, err := s.Patch(ctx, "*", []byte(restart)); err != nil {
		t.Fatalf("restart with 3 candidates: %v", err)
	}
	frag := strings.Replace(string(trickle(1, 20)), "ice-ufrag:abcd", "ice-ufrag:newU", 1)
	if _, _, err := s.Patch(ctx, "*", []byte(frag)); !errors.As(err, &ce) {
		t.Fatalf("a fourth candidate after the restart: %v", err)
	}
	tooMany := "a=ice-ufrag:U3\r\na=ice-pwd:newpasswordnewpassword34\r\n" + string(trickle(4, 30))[len("a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"):]
	if _, _, err := s.Patch(ctx, "*", []byte(tooMany)); !errors.As(err, &ce) {
		t.Fatalf("restart with 4 candidates: %v", err)
	}
	if _, err := answeredSession(t, -1, testOffer(30)); err != nil {
		t.Fatalf("no limit: %v", err)
	}
}

// An ICE restart's credentials are the client's text, inserted as they
// are: "$0" or "${1}" are not regexp templates.
func TestRestartCredentialsLiteral(t *testing.T) {
	s, err := answeredSession(t, 0, testOffer(0))
	if err != nil {
		t.Fatal(err)
	}
	const ufrag, pwd = "$0$0+/x", "${1}$1abcdefghijklmnopqrstu"
	frag := "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:" + pwd + "\r\n"
	if _, _, err := s.Patch(context.Background(), "*", []byte(frag)); err != nil {
		t.Fatalf("restart: %v", err)
	}
	remote := s.PC.RemoteDescription().SDP
	if !strings.Contains(remote, "a=ice-ufrag:"+ufrag+"\r\n") || !strings.Contains(remote, "a=ice-pwd:"+pwd+"\r\n") {
		t.Errorf("the restart offer does not carry the credentials as sent:\n%s", remote)
	}
}
