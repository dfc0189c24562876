package whipclient

import (
	"context"
	"errors"
	"fmt"
)

// Cycle is one whole session pair, as churn and soak runs repeat it:
// publish opts to baseURL/whip/name, watch baseURL/whep/name (with the
// publisher's HTTP client and setting engine) until a video frame
// arrives, then end the viewer and the publisher with DELETE. Failing to
// end either is an error too.
func Cycle(ctx context.Context, baseURL, name string, opts PublishOptions) error {
	pub, err := Publish(ctx, baseURL+"/whip/"+name, opts)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer pub.Close()
	select {
	case <-pub.Connected():
	case <-ctx.Done():
		return fmt.Errorf("publisher never connected: %w", ctx.Err())
	}
	v, err := View(ctx, baseURL+"/whep/"+name, ViewOptions{Token: opts.Token, SettingEngine: opts.SettingEngine, HTTPClient: opts.HTTPClient})
	if err != nil {
		return fmt.Errorf("view: %w", err)
	}
	defer v.Close()
	if err := v.WaitVideoFrames(ctx, 1); err != nil {
		return err
	}
	return errors.Join(v.Close(), pub.Close())
}
