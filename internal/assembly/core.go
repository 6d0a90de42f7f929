package assembly

import (
	"context"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/deliveryq"
)

// CoreConfig is what StartCore starts.
type CoreConfig struct {
	Runner runner.Config
	// Deliveries configures the webhook delivery queue; its Store,
	// Logger and Trigger are the runner's.
	Deliveries deliveryq.Config
	// Serve starts handing the bus's events to h (the event consumer,
	// and the built-in agent) until the caller stops it; it is called
	// before the runner recovers its runs, whose agents may be reporting.
	Serve func(h runner.BusHandler) error
}

// StartCore makes the runner, rebuilds its metrics from the store's
// history, starts serving the bus's events and the runner, and makes the
// delivery queue in front of it, in the order `runnel server` does. On
// an error after the runner started it closes it; the caller closes it
// otherwise (after draining the queue).
func StartCore(ctx context.Context, c CoreConfig) (*runner.Runner, *deliveryq.Queue, error) {
	rn, err := runner.New(c.Runner)
	if err != nil {
		return nil, nil, err
	}
	if m := c.Runner.Metrics; m != nil {
		if err := m.Rebuild(ctx, runner.History{Store: c.Runner.Store}); err != nil && c.Runner.Logger != nil {
			c.Runner.Logger.Warn("rebuild metrics from history", "err", err)
		}
	}
	if err := c.Serve(rn.Handler()); err != nil {
		return nil, nil, err
	}
	if err := rn.Start(ctx); err != nil {
		return nil, nil, err
	}
	dc := c.Deliveries
	dc.Store, dc.Logger, dc.Trigger = c.Runner.Store, c.Runner.Logger, rn.TriggerDelivery
	q, err := deliveryq.New(dc)
	if err != nil {
		rn.Close()
		return nil, nil, err
	}
	return rn, q, nil
}
