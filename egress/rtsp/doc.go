// Package rtsp restreams the hub's live streams to RTSP players: each live
// stream becomes one gortsplib ServerStream, fed by a single hub
// subscription and shared by all of its readers at rtsp://host:8554/{stream}.
//
// Files: server.go holds the lifecycle and the set of live streams,
// handler.go the RTSP requests and their status codes, auth.go the read
// tokens, stream.go one live stream bound to its ServerStream.
package rtsp
