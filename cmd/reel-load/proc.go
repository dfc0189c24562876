package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process's CPU time and memory.
type procSample struct {
	at     time.Time
	cpu    time.Duration // user + system
	rssKB  int64
	hwmKB  int64 // peak RSS
	thread int64
}

func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces; fields start after its ")".
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	file, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rssKB = n
		case "VmHWM":
			s.hwmKB = n
		case "Threads":
			s.thread = n
		}
	}
	return s, sc.Err()
}

// cpuShare is the CPU used between two samples, in cores (1.0 = one core).
func cpuShare(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return float64(b.cpu-a.cpu) / float64(wall)
}

// sysSample is the machine-wide CPU time from /proc/stat, in ticks.
type sysSample struct{ busy, total int64 }

func readSys() sysSample {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return sysSample{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var s sysSample
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		s.total += n
		if i != 3 && i != 4 { // idle, iowait
			s.busy += n
		}
	}
	return s
}

// sysBusy is the busy share of all cores between two samples (0..1).
func sysBusy(a, b sysSample) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}

// udpErrors reads the kernel's UDP receive and send buffer error counters:
// a full socket buffer is where loopback loses packets.
type udpErrors struct{ rcvbuf, sndbuf, inErrors int64 }

func readUDPErrors() udpErrors {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return udpErrors{}
	}
	var names, values []string
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "Udp:") {
			continue
		}
		if names == nil {
			names = strings.Fields(line)
		} else {
			values = strings.Fields(line)
		}
	}
	var u udpErrors
	for i := range min(len(names), len(values)) {
		n, _ := strconv.ParseInt(values[i], 10, 64)
		switch names[i] {
		case "RcvbufErrors":
			u.rcvbuf = n
		case "SndbufErrors":
			u.sndbuf = n
		case "InErrors":
			u.inErrors = n
		}
	}
	return u
}

// findGateway returns the pid of the only running process called "reel".
func findGateway() (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(comm)) == "reel" {
			pids = append(pids, pid)
		}
	}
	switch len(pids) {
	case 1:
		return pids[0], nil
	case 0:
		return 0, fmt.Errorf("no process called reel is running; pass -pid")
	}
	return 0, fmt.Errorf("%d processes called reel are running (%v); pass -pid", len(pids), pids)
}
