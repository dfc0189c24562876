// Package id makes unguessable identifiers: session ids, event ids.
package id

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns 128 bits from crypto/rand as 32 hex digits.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
