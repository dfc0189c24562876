//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64 || mips64 || mips64le)

package rtc

import (
	"encoding/binary"
	"syscall"
	"testing"
	"time"
)

func TestKernelTime(t *testing.T) {
	msg := func(level, typ int32, payload ...int64) []byte {
		b := make([]byte, cmsgHeader+8*len(payload))
		binary.NativeEndian.PutUint64(b, uint64(len(b)))
		binary.NativeEndian.PutUint32(b[8:], uint32(level))
		binary.NativeEndian.PutUint32(b[12:], uint32(typ))
		for i, v := range payload {
			binary.NativeEndian.PutUint64(b[cmsgHeader+8*i:], uint64(v))
		}
		return b
	}
	at := time.Unix(1764590400, 123456789)
	ts := msg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, at.Unix(), int64(at.Nanosecond()))
	for name, c := range map[string]struct {
		oob []byte
		ok  bool
	}{
		"alone":               {ts, true},
		"after another":       {append(msg(syscall.IPPROTO_IP, 8, 1), ts...), true},
		"none":                {nil, false},
		"another only":        {msg(syscall.IPPROTO_IP, 8, 1), false},
		"cut short":           {ts[:20], false},
		"length past the end": {append(msg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS), 0, 0, 0, 0)[:cmsgHeader], false},
	} {
		got, ok := kernelTime(c.oob)
		if ok != c.ok || (ok && !got.Equal(at)) {
			t.Errorf("%s: %v %v", name, got, ok)
		}
	}
}
