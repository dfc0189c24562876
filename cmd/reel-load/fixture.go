package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// defaultVideoFile is the 2.5 Mbit/s 720p H.264 fixture (testdata/generate.sh).
const defaultVideoFile = "h264-2500k.h264"

// fixtureFPS is the frame rate of the H.264 fixtures, which carry none.
const fixtureFPS = 30

// videoSource resolves the video file to publish. For H.264 and a bitrate
// above the file's own, every access unit gets a filler-data NAL unit (type
// 12, which decoders and the recorder pass over as x264's CBR mode does), so
// the stream reaches the bitrate with real, decodable media. It returns the
// file to send and its average video bitrate in bit/s.
func videoSource(video, file string, bitrate int, tmpDir string) (string, float64, error) {
	if file == "" {
		name := defaultVideoFile
		if video != "h264" {
			name = video + ".ivf"
		}
		p, err := testmedia.Lookup(name)
		if err != nil {
			return "", 0, fmt.Errorf("finding the %s fixture (run from the module, or pass -video-file): %w", video, err)
		}
		file = p
	}
	if video != "h264" {
		_, samples, err := testmedia.ReadIVF(file)
		if err != nil {
			return "", 0, err
		}
		return file, sampleRate(samples), nil
	}
	samples, err := testmedia.ReadH264(file, fixtureFPS)
	if err != nil {
		return "", 0, err
	}
	rate := sampleRate(samples)
	if bitrate <= 0 || float64(bitrate) <= rate*1.01 {
		return file, rate, nil
	}
	pad := int((float64(bitrate) - rate) / 8 / fixtureFPS)
	var out bytes.Buffer
	filler := fillerNAL(pad)
	for _, s := range samples {
		out.Write(s.Data)
		out.Write(filler)
	}
	padded := filepath.Join(tmpDir, fmt.Sprintf("video-%dk.h264", bitrate/1000))
	if err := os.WriteFile(padded, out.Bytes(), 0o644); err != nil {
		return "", 0, fmt.Errorf("writing the padded fixture: %w", err)
	}
	samples, err = testmedia.ReadH264(padded, fixtureFPS)
	if err != nil {
		return "", 0, err
	}
	return padded, sampleRate(samples), nil
}

// fillerNAL is an Annex-B filler-data NAL unit whose whole size is n bytes.
func fillerNAL(n int) []byte {
	const overhead = 4 + 1 + 1 // start code, NAL header, rbsp trailing bits
	n = max(n, overhead+1)
	b := make([]byte, n)
	copy(b, []byte{0, 0, 0, 1, 12})
	for i := 5; i < n-1; i++ {
		b[i] = 0xff
	}
	b[n-1] = 0x80
	return b
}

// sampleRate is the average bitrate of samples in bit/s.
func sampleRate(samples []testmedia.Sample) float64 {
	var bytes int
	var d time.Duration
	for _, s := range samples {
		bytes += len(s.Data)
		d += s.Duration
	}
	if d <= 0 {
		return 0
	}
	return float64(bytes) * 8 / d.Seconds()
}

// simulcastLowerRate is the bitrate of -simulcast's two lower layers
// together (testdata/h264-2500k-640.h264 and -320.h264, 600 and 200
// kbit/s), for the pacer.
const simulcastLowerRate = 800_000

// simulcastLayers are -simulcast's layers, as browsers name them: "q"
// 320x180 and "h" 640x360 from testdata, "f" the 720p top file.
func simulcastLayers(top string) []whipclient.SimulcastLayer {
	low, _ := testmedia.Lookup("h264-2500k-320.h264")
	mid, _ := testmedia.Lookup("h264-2500k-640.h264")
	return []whipclient.SimulcastLayer{{RID: "q", File: low}, {RID: "h", File: mid}, {RID: "f", File: top}}
}

// layerRIDs maps the names a viewer pins (-layers) to the rids of
// simulcastLayers.
var layerRIDs = map[string]string{"low": "q", "mid": "h", "high": "f", "q": "q", "h": "h", "f": "f"}
