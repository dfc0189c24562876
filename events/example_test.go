package events_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/reel-gateway/reel/events"
)

// A webhook receiver checks the signature over the raw body, and its time
// against its own clock, before it trusts the event; it answers 2xx once
// it has it (anything 5xx makes Reel try again later, with the same
// X-Reel-Delivery id, which also lets it drop a redelivery).
func ExampleVerify() {
	const secret = "the value of events.secret"
	http.HandleFunc("/reel", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = events.Verify(secret, body, r.Header.Get(events.SignatureHeader), events.SignatureTolerance, time.Now())
		}
		if err != nil {
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
	fmt.Println(events.Sign("s3cret", time.Unix(1767225600, 0), []byte(`{"type":"publish.started","stream":"cam1"}`)))
	// Output: t=1767225600,v1=52a337eeb291e9179991b5cc1215e1d06f7318fb210cbb1161d379cf52f869fc
}
