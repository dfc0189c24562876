// Package rtsp restreams the hub's live streams to RTSP players: each live
// stream becomes one gortsplib ServerStream, fed by a single hub
// subscription and shared by all of its readers at rtsp://host:8554/{stream}.
//
// Transports: TCP-interleaved, UDP, UDP multicast when a group range is
// configured, and RTSPS with a certificate. Who may read is decided by
// Config.Gate, the gateway's access policy (package access): the same
// token rules and viewer limits as WHEP and HLS.
//
// Files: server.go holds the lifecycle and the set of live streams,
// handler.go the RTSP requests and their status codes, auth.go the
// credentials, stream.go one live stream bound to its ServerStream,
// padding.go the filter for browsers' padding-only packets, follow.go a
// simulcast stream's plain path moving to the top layer, setupgate.go
// the guard around a gortsplib race between concurrent SETUPs, batchconn.go
// the TCP readers' connections, which send a frame's packets in one write.
package rtsp
