//go:build unix

package rtc

import "syscall"

// socketInfo is c's inode (as /proc/net/udp names it) and its receive
// buffer (SO_RCVBUF, what the kernel granted).
func socketInfo(c syscall.Conn) (inode uint64, rcvbuf int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var opErr error
	err = raw.Control(func(fd uintptr) {
		var st syscall.Stat_t
		if opErr = syscall.Fstat(int(fd), &st); opErr != nil {
			return
		}
		inode = uint64(st.Ino)
		rcvbuf, opErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	if err == nil {
		err = opErr
	}
	return inode, rcvbuf, err
}
