package events_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/reel-gateway/reel/events"
)

// A webhook receiver checks the signature over the raw body before it
// trusts the event, and answers 2xx once it has it (anything 5xx makes
// Reel try again later, with the same X-Reel-Delivery id).
func ExampleVerify() {
	const secret = "the value of events.secret"
	http.HandleFunc("/reel", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || !events.Verify(secret, body, r.Header.Get(events.SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev events.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		fmt.Println(ev.Type, ev.Stream)
	})
}

func ExampleSign() {
	fmt.Println(events.Sign("s3cret", []byte(`{"type":"publish.started","stream":"cam1"}`)))
	// Output: sha256=667cfdd2215dc68cb3f7636addb4249c5607c42d64a4387ec4594c89108b006f
}
