//go:build !unix

package rtc

import "syscall"

func socketInfo(syscall.Conn) (uint64, int, error) { return 0, 0, errNoSocketStats }
