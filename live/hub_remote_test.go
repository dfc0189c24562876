package live

import (
	"context"
	"errors"
	"testing"
)

// TestFindAsksRemote: Find serves the hub's own stream, asks the Remote
// only for names that are not live here, and treats its failure as "not
// live".
func TestFindAsksRemote(t *testing.T) {
	h := NewHub(Reject)
	own := publishTest(t, h, "own", nil)
	if h.Find(context.Background(), "elsewhere") != nil {
		t.Fatal("a hub without a Remote found a stream that is not live")
	}
	var asked []string
	h.SetRemote(func(ctx context.Context, name string) (*Stream, error) {
		asked = append(asked, name)
		switch name {
		case "elsewhere":
			return h.Publish(name, PublishSpec{Protocol: RelayProtocol, Tracks: []*Track{{Kind: Video, Codec: VP8, PayloadType: 96, ClockRate: 90000}}})
		case "broken":
			return nil, errors.New("owner unreachable")
		}
		return nil, nil
	})
	if got := h.Find(context.Background(), "own"); got != own {
		t.Fatalf("Find(own) = %v, want the hub's own stream", got)
	}
	relay := h.Find(context.Background(), "elsewhere")
	if relay == nil || !relay.Relayed() || relay.Protocol() != RelayProtocol {
		t.Fatalf("Find(elsewhere) = %v, want a relay", relay)
	}
	if h.Find(context.Background(), "elsewhere") != relay {
		t.Fatal("a second Find brought the relay in again")
	}
	if h.Find(context.Background(), "broken") != nil || h.Find(context.Background(), "nowhere") != nil {
		t.Fatal("Find returned a stream the Remote did not have")
	}
	if want := []string{"elsewhere", "broken", "nowhere"}; len(asked) != len(want) {
		t.Fatalf("Remote asked for %v, want %v", asked, want)
	}
	if own.Relayed() {
		t.Fatal("a published stream says it is a relay")
	}
}
