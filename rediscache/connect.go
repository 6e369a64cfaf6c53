package rediscache

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is how the cache reaches Redis.
type Mode string

const (
	// Single is one server (or whatever sits behind one address).
	Single Mode = "single"
	// Cluster is a Redis Cluster, keys sharded over its masters by slot.
	Cluster Mode = "cluster"
	// Sentinel is a master that Redis Sentinel watches and replaces.
	Sentinel Mode = "sentinel"
)

// Conn says where Redis is: REDIS_CONN_URL and the Sentinel settings.
type Conn struct {
	// URL is one redis:// or rediss:// URL (a single server), or several
	// separated by commas: the nodes of a Redis Cluster, or, with
	// SentinelMaster, the Sentinels. A list shares one scheme, user,
	// password and database.
	URL string
	// SentinelMaster is the name of the master the Sentinels watch; it
	// makes URL the Sentinels' addresses. The URL's user and password
	// are the master's; SentinelPassword is the Sentinels' own, if they
	// ask for one.
	SentinelMaster   string
	SentinelPassword string
	// RootCAs verify rediss:// servers; nil: the system's.
	RootCAs *x509.CertPool
	// Timeout bounds every dial, read and write (default 1 s): Redis is a
	// cache and must never hold ingestion or a read up.
	Timeout time.Duration
}

// parsed is a Conn's client options, before any server is asked.
type parsed struct {
	mode   Mode
	single *redis.Options          // Single
	multi  *redis.UniversalOptions // Cluster, Sentinel
}

// parse checks c and builds the options of its client. Its errors name
// the node by its place in the list, never the URL (it may hold a
// password).
func (c Conn) parse() (parsed, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	var nodes []*redis.Options
	for i, raw := range strings.Split(c.URL, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		n := len(nodes) + 1
		u, err := url.Parse(raw)
		if err != nil {
			return parsed{}, fmt.Errorf("REDIS_CONN_URL: entry %d is not a URL", i+1)
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" && (u.Scheme != "unix" || c.SentinelMaster != "" || strings.Contains(c.URL, ",")) {
			return parsed{}, fmt.Errorf("REDIS_CONN_URL: entry %d: scheme %q; want redis:// or rediss:// (unix:// names a single server only)", n, u.Scheme)
		}
		o, err := redis.ParseURL(raw)
		if err != nil {
			return parsed{}, fmt.Errorf("REDIS_CONN_URL: entry %d: %w", n, hideURL(err))
		}
		if o.TLSConfig != nil && c.RootCAs != nil {
			o.TLSConfig.RootCAs = c.RootCAs
		}
		if len(nodes) > 0 {
			first := nodes[0]
			if o.Username != first.Username || o.Password != first.Password || (o.TLSConfig == nil) != (first.TLSConfig == nil) || o.DB != first.DB {
				return parsed{}, fmt.Errorf("REDIS_CONN_URL: entry %d has another scheme, user, password or database than entry 1; the nodes of a list share them", n)
			}
		}
		nodes = append(nodes, o)
	}
	if len(nodes) == 0 {
		return parsed{}, errors.New("REDIS_CONN_URL is empty")
	}
	first := nodes[0]
	first.DialTimeout, first.ReadTimeout, first.WriteTimeout = timeout, timeout, timeout
	first.MaxRetries = 0
	if len(nodes) == 1 && c.SentinelMaster == "" {
		return parsed{mode: Single, single: first}, nil
	}
	addrs := make([]string, len(nodes))
	for i, o := range nodes {
		addrs[i] = o.Addr
	}
	opts := &redis.UniversalOptions{
		Addrs:      addrs,
		ClientName: first.ClientName,
		Protocol:   first.Protocol,
		Username:   first.Username,
		Password:   first.Password,
		DB:         first.DB,
		TLSConfig:  first.TLSConfig,
		PoolSize:   first.PoolSize,

		DialTimeout:  timeout,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		MaxRetries:   0,
	}
	if opts.TLSConfig != nil {
		// Each node is verified by its own name, not the first one's.
		opts.TLSConfig = opts.TLSConfig.Clone()
		opts.TLSConfig.ServerName = ""
	}
	if c.SentinelMaster != "" {
		opts.MasterName, opts.SentinelPassword = c.SentinelMaster, c.SentinelPassword
		return parsed{mode: Sentinel, multi: opts}, nil
	}
	if first.DB != 0 {
		return parsed{}, fmt.Errorf("REDIS_CONN_URL: a Redis Cluster has only database 0, the URLs name %d", first.DB)
	}
	opts.IsClusterMode = true
	return parsed{mode: Cluster, multi: opts}, nil
}

// Check reports what is wrong with c, without contacting Redis.
func (c Conn) Check() error {
	_, err := c.parse()
	return err
}

// hideURL drops the text of a url.Error, which quotes the URL.
func hideURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Connect returns a client of the Redis c names, and its mode. A single
// URL that names a node of a Redis Cluster (it says cluster_enabled:1)
// gets a cluster client seeded with that node: a single-server client
// would be answered MOVED for the keys of every other node. When the
// server does not answer the question, Connect assumes a single server
// and says so in err, which is then only a warning: the cache works
// without Redis, and Redis may come later.
func Connect(ctx context.Context, c Conn) (redis.UniversalClient, Mode, error) {
	p, err := c.parse()
	if err != nil {
		return nil, "", err
	}
	if p.mode != Single {
		return redis.NewUniversalClient(p.multi), p.mode, nil
	}
	client := redis.NewClient(p.single)
	cluster, err := isClusterNode(ctx, client, p.single.ReadTimeout)
	switch {
	case err != nil:
		return client, Single, fmt.Errorf("could not ask Redis whether it is a node of a Redis Cluster; assuming a single server (list the cluster's nodes in REDIS_CONN_URL, comma-separated, to say it is one): %w", err)
	case !cluster:
		return client, Single, nil
	}
	client.Close()
	if p.single.DB != 0 {
		return nil, "", fmt.Errorf("REDIS_CONN_URL names a node of a Redis Cluster, which has only database 0, and database %d", p.single.DB)
	}
	o := p.single
	opts := &redis.UniversalOptions{
		Addrs: []string{o.Addr}, ClientName: o.ClientName, Protocol: o.Protocol,
		Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig, PoolSize: o.PoolSize,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		IsClusterMode: true,
	}
	return redis.NewUniversalClient(opts), Cluster, nil
}

// isClusterNode asks a server whether it runs in cluster mode.
func isClusterNode(ctx context.Context, client *redis.Client, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := client.Info(ctx, "cluster").Result()
	if err != nil && strings.Contains(err.Error(), "SELECT is not allowed in cluster mode") {
		return true, nil // a database other than 0, on a cluster node
	}
	if err != nil {
		return false, err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_enabled:"); ok {
			return v == "1", nil
		}
	}
	return false, nil
}
