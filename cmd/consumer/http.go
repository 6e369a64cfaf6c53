package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/httpapi"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rediscache"
	"github.com/viswals/viswals/usercache"
)

// deps are the parts the HTTP API is built from.
type deps struct {
	store    *postgres.Store
	cache    *rediscache.Cache
	keyring  *emailcrypt.Keyring
	consumer *rabbitmq.Consumer
}

// newAPI returns the API and the changefeed hub its streams follow, which
// the caller runs.
func newAPI(cfg config.Consumer, logger *slog.Logger, reg *prometheus.Registry, d deps) (*httpapi.API, *changefeed.Hub, error) {
	feed := changefeed.New(d.store, changefeed.Options{Logger: logger, Metrics: changefeed.NewMetrics(reg)})
	api, err := httpapi.New(httpapi.Config{
		CursorKey: d.keyring.CursorKey(),
		Registry:  reg,
		Logger:    logger,
		SSE:       httpapi.SSEOptions{Heartbeat: cfg.Heartbeat},
	}, httpapi.Deps{
		Users: usercache.NewStore(d.store, d.cache, d.keyring, usercache.Options{Logger: logger, Metrics: usercache.NewMetrics(reg)}),
		Keys:  d.keyring,
		Feed:  feed,
		Checks: map[string]httpapi.Check{
			"postgres": d.store.Ping,
			"redis":    d.cache.Ping,
			"rabbitmq": func(context.Context) error {
				if !d.consumer.Connected() {
					return errors.New("not connected")
				}
				return nil
			},
		},
	})
	return api, feed, err
}
