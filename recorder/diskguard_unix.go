//go:build unix

package recorder

import (
	"fmt"
	"syscall"
)

// osFreeSpace asks the operating system (statfs) for the space available
// to unprivileged users.
type osFreeSpace struct{}

func (osFreeSpace) FreeSpace(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
