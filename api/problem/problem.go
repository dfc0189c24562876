// Package problem writes RFC 9457 problem details, the one error body of
// every HTTP answer Reel gives (the API, WHIP, WHEP, HLS): what went wrong,
// in a sentence a person can act on.
package problem

import (
	"encoding/json"
	"net/http"
)

// Details is an RFC 9457 problem body.
type Details struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// ContentType is the media type of a problem body.
const ContentType = "application/problem+json"

// Write answers with status and a problem body saying detail. Errors are
// not cached: the state they describe changes.
func Write(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(Details{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
