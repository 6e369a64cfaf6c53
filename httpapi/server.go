package httpapi

import (
	"context"
	"net"
	"net/http"
	"time"
)

// NewServer returns an http.Server for handler with every timeout set, so
// a slow or idle client cannot hold a connection or goroutine forever.
// WriteTimeout bounds ordinary replies; SSE streams lift it for themselves
// and bound each write instead (SSEOptions.WriteTimeout).
func NewServer(addr string, handler http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		// SSE streams bound their connection's send buffer (SSEOptions).
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return withConn(ctx, c) },
	}
}
