// Package testmedia reads the encoded media fixtures in <module>/testdata into
// timed samples (one video access unit or one Opus packet each) so tests and
// tools can send real media without a live encoder.
package testmedia

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Sample is one encoded frame (video access unit or one Opus packet).
type Sample struct {
	Data     []byte
	Duration time.Duration
	Keyframe bool
}

// Dir returns the absolute path of the module's testdata directory. It walks
// up from the current working directory until it finds go.mod, so it works
// from any package's tests. It panics if no go.mod is found, because every
// caller is a test running inside the module; tools should use Lookup.
func Dir() string {
	dir, err := moduleRoot()
	if err != nil {
		panic(fmt.Sprintf("testmedia: locating testdata: %v", err))
	}
	return filepath.Join(dir, "testdata")
}

// Path returns the absolute path of the named fixture inside Dir().
func Path(name string) string {
	return filepath.Join(Dir(), name)
}

// Lookup is Path without the panic: it returns the fixture's absolute path,
// or an error if there is no module root or no such file.
func Lookup(name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("locating fixture %s: %w", name, err)
	}
	path := filepath.Join(root, "testdata", name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("locating fixture %s: %w", name, err)
	}
	return path, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getting working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in any parent of the working directory")
		}
		dir = parent
	}
}
