package recorder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/reel-gateway/reel/internal/atomicfile"
)

// sidecarPath is where a recording's metadata lives: next to the final
// file, with the same name plus ".json" ("x.mkv.json").
func sidecarPath(finalPath string) string { return finalPath + ".json" }

// writeSidecar writes info as JSON atomically: to a temporary file first,
// then renamed over the old one, so a reader never sees half a document.
func writeSidecar(path string, info Info) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding recording metadata: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n')); err != nil {
		return fmt.Errorf("writing recording metadata %s: %w", filepath.Base(path), err)
	}
	return nil
}

// readSidecar reads a recording's metadata.
func readSidecar(path string) (Info, error) {
	var info Info
	data, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("reading recording metadata: %w", err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("decoding recording metadata %s: %w", filepath.Base(path), err)
	}
	return info, nil
}
