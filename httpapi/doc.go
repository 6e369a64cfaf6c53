// Package httpapi is the users API the consumer serves: keyset-paged lists
// with name filters (GET /users), cached reads of one user
// (GET /users/{id}), a resumable live changefeed over Server-Sent Events
// (GET /users/sse), the live page that shows it (GET /), health, readiness,
// Prometheus metrics and the OpenAPI document. routes.go lists every route
// with who may use it; authn.go lets a request through only with a bearer
// token or the page's session cookie of a role that may (package auth
// says which role sees what).
//
// The package depends on small interfaces (deps.go), not on the stores;
// cmd/consumer wires the concrete types in:
//
//	users := usercache.NewStore(store, cache, keyring, usercache.Options{...})
//	feed := changefeed.New(store, changefeed.Options{...})
//	api, err := httpapi.New(httpapi.Config{
//		CursorKey: keyring.CursorKey(),
//		Registry:  registry, // also served on /metrics
//		Logger:    logger,
//		Auth:      auth.NewAuthenticator(keyFile, oidc), // API keys, JWTs
//		Sessions:  sessions,                            // the page's cookies
//	}, httpapi.Deps{
//		Users: users,              // *usercache.Store: Postgres, Redis in front
//		Keys:  keyring,            // *emailcrypt.Keyring
//		Feed:  feed,               // *changefeed.Hub over *postgres.Store
//		Checks: map[string]httpapi.Check{
//			"postgres": store.Ping, "redis": cache.Ping, "rabbitmq": broker.Ping,
//		},
//	})
//	go feed.Run(ctx) // feeds live SSE streams until ctx ends
//	srv := httpapi.NewServer(":8080", api)
//
// Errors from the stores carry viswals error codes; errorStatus (respond.go)
// is the one place that turns them into HTTP statuses.
package httpapi
