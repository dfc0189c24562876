package main

import (
	"fmt"
	"net/url"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// rtspReader is one RTSP player: a gortsplib client that sets up every
// media of the stream over TCP (interleaved) or UDP and plays it.
type rtspReader struct {
	c *gortsplib.Client
}

// dialRTSP plays rawURL; a token is sent as the Basic auth password, which
// is how Reel's RTSP server takes it.
func dialRTSP(rawURL, token, transport string, recv *receiver) (*rtspReader, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing RTSP URL %q: %w", rawURL, err)
	}
	if token != "" {
		u.User = url.UserPassword("reel-load", token)
	}
	tr := gortsplib.TransportTCP
	if transport == "udp" {
		tr = gortsplib.TransportUDP
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr, UDPReadBufferSize: 1 << 20, UserAgent: "reel-load"}
	if err := c.Start2(); err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", u.Host, err)
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("RTSP DESCRIBE %s: %w", rawURL, err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		c.Close()
		return nil, fmt.Errorf("RTSP SETUP %s: %w", rawURL, err)
	}
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		recv.packet(m.Type == description.MediaTypeVideo, pkt.SequenceNumber, pkt.Timestamp, len(pkt.Payload), now())
	})
	if _, err := c.Play(nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("RTSP PLAY %s: %w", rawURL, err)
	}
	return &rtspReader{c: c}, nil
}

func (r *rtspReader) Close() { r.c.Close() }
