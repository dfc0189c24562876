//go:build !unix

package recorder

import "errors"

// osFreeSpace cannot measure free space on this platform; the guard then
// lets recordings run.
type osFreeSpace struct{}

func (osFreeSpace) FreeSpace(string) (uint64, error) {
	return 0, errors.New("free disk space is not measured on this platform")
}
