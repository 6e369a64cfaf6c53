package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

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
	key      []byte
}

func newAPI(cfg config.Consumer, logger *slog.Logger, reg *prometheus.Registry, d deps) (*httpapi.API, error) {
	cursorKey, err := httpapi.DeriveCursorKey(d.key)
	if err != nil {
		return nil, fmt.Errorf("cursor key: %w", err)
	}
	return httpapi.New(httpapi.Config{
		CursorKey: cursorKey,
		Registry:  reg,
		Logger:    logger,
		SSE:       httpapi.SSEOptions{Heartbeat: cfg.Heartbeat},
	}, httpapi.Deps{
		Users: usercache.NewStore(d.store, d.cache, d.keyring, usercache.Options{Logger: logger, Metrics: usercache.NewMetrics(reg)}),
		Keys:  d.keyring,
		Feed:  d.store,
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
}
