package recorder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing recording metadata: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
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
