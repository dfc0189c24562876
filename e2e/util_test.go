package e2e

import (
	"errors"
	"os/exec"

	"github.com/reel-gateway/reel/internal/whipclient"
)

func runReel(args ...string) (string, error) {
	out, err := exec.Command(binary, args...).CombinedOutput()
	return string(out), err
}

func asHTTPError(err error, target **whipclient.HTTPError) bool { return errors.As(err, target) }
