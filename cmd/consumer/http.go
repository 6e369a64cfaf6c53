package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/viswals/viswals/config"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/rabbitmq"
	"github.com/viswals/viswals/rediscache"
)

// deps are the parts the HTTP API is built from.
type deps struct {
	store    *postgres.Store
	cache    *rediscache.Cache
	redis    *redis.Client
	keyring  *emailcrypt.Keyring
	consumer *rabbitmq.Consumer
	key      []byte
}

func newHTTPServer(cfg config.Consumer, logger *slog.Logger, reg *prometheus.Registry, d deps) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"success","data":"ok"}`))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return &http.Server{Addr: cfg.Addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}
