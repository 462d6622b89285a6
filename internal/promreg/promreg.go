// Package promreg registers tierd's metrics with an injected
// prometheus.Registerer the same way in every package: a collector already
// registered under the same name is reused (so a store reopened on the same
// registry, or several in one process, keep counting into one series), and
// any other registration failure leaves the collector unregistered rather
// than stop the component — metrics never take storage down.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns the collector to use: c, or the
// one already registered in its place. A nil reg registers nothing.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing
		}
	}
	return c
}
