package rediscache

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rediscache/redistest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	redistest.StopShared()
	os.Exit(code)
}

// TestOnCluster runs the cache's tests again against a 3-master Redis
// Cluster: the script calls, pipelines and the prefix clear must work
// across slots. testClient sees the name and connects to the cluster.
func TestOnCluster(t *testing.T) {
	redistest.SharedCluster(t)
	for name, test := range map[string]func(*testing.T){
		"PutGetRoundTrip":         TestPutGetRoundTrip,
		"PutSetsTTL":              TestPutSetsTTL,
		"PutKeepsNewestVersion":   TestPutKeepsNewestVersion,
		"PutSameIDTwiceInOneCall": TestPutSameIDTwiceInOneCall,
		"PutBatches":              TestPutBatches,
		"PutEqualVersionIsNoop":   TestPutEqualVersionIsNoop,
		"PutReplacesForeignValue": TestPutReplacesForeignValue,
		"GetMiss":                 TestGetMiss,
		"GetCorrupt":              TestGetCorrupt,
		"NoPlaintextEmailStored":  TestNoPlaintextEmailStored,
		"PutLoadsMissingScript":   TestPutLoadsMissingScript,
		"Delete":                  TestDelete,
		"DeleteAll":               TestDeleteAll,
		"GetManyAnswersLikeGet":   TestGetManyAnswersLikeGet,
		"PutNew":                  TestPutNew,
		"ManySlots":               testManySlots,
	} {
		t.Run(name, test)
	}
}

// testManySlots writes, reads and clears users spread over every master
// in one call each.
func testManySlots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, client := newTestCache(t, time.Minute)
	require.IsType(t, &redis.ClusterClient{}, client)
	var users []viswals.SealedUser
	var ids []int64
	for id := int64(1); id <= 300; id++ {
		users = append(users, sampleUser(id, viswals.Version{Load: 1, Line: id}))
		ids = append(ids, id)
	}
	require.NoError(t, c.Put(ctx, users))
	masters := 0
	require.NoError(t, client.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		keys, _, err := n.Scan(ctx, 0, c.prefix+"*", 1000).Result()
		if len(keys) > 0 {
			masters++ // racy only across masters, and counted after
		}
		return err
	}))
	assert.Equal(t, 3, masters, "the users are spread over the three masters")
	got, errs := c.GetMany(ctx, ids)
	for i := range ids {
		require.NoError(t, errs[i])
		assert.Equal(t, ids[i], got[i].ID)
	}
	require.NoError(t, c.Ping(ctx))
	n, err := c.DeleteAll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 300, n)
	_, err = c.Get(ctx, 7)
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err))
}

func TestConnParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		conn    Conn
		mode    Mode
		addrs   []string
		wantErr string
	}{
		{name: "one server", conn: Conn{URL: "redis://:pw@127.0.0.1:6379/2"}, mode: Single, addrs: []string{"127.0.0.1:6379"}},
		{name: "a unix socket", conn: Conn{URL: "unix:///run/redis.sock"}, mode: Single, addrs: []string{"/run/redis.sock"}},
		{name: "cluster nodes", conn: Conn{URL: "redis://:pw@h1:7000, redis://:pw@h2:7001,redis://:pw@h3:7002"}, mode: Cluster, addrs: []string{"h1:7000", "h2:7001", "h3:7002"}},
		{name: "cluster over TLS", conn: Conn{URL: "rediss://h1:7000,rediss://h2:7001"}, mode: Cluster, addrs: []string{"h1:7000", "h2:7001"}},
		{name: "sentinels", conn: Conn{URL: "redis://:masterpw@s1:26379,redis://:masterpw@s2:26379/3", SentinelMaster: "mymaster"}, wantErr: "another scheme, user, password or database"},
		{name: "sentinels, one database", conn: Conn{URL: "redis://:masterpw@s1:26379/3,redis://:masterpw@s2:26379/3", SentinelMaster: "mymaster", SentinelPassword: "spw"}, mode: Sentinel, addrs: []string{"s1:26379", "s2:26379"}},
		{name: "one sentinel", conn: Conn{URL: "redis://:masterpw@s1:26379/3", SentinelMaster: "mymaster", SentinelPassword: "spw"}, mode: Sentinel, addrs: []string{"s1:26379"}},
		{name: "cluster with a database", conn: Conn{URL: "redis://h1:7000/1,redis://h2:7001/1"}, wantErr: "only database 0"},
		{name: "nodes with other passwords", conn: Conn{URL: "redis://:secret1@h1:7000,redis://:secret2@h2:7001"}, wantErr: "entry 2 has another scheme, user, password or database"},
		{name: "TLS and not", conn: Conn{URL: "rediss://h1:7000,redis://h2:7001"}, wantErr: "entry 2 has another"},
		{name: "empty", conn: Conn{URL: " , "}, wantErr: "REDIS_CONN_URL is empty"},
		{name: "other scheme", conn: Conn{URL: "http://:secret1@h1:80"}, wantErr: `scheme "http"`},
		{name: "unix in a list", conn: Conn{URL: "unix:///a.sock,unix:///b.sock"}, wantErr: "unix:// names a single server only"},
		{name: "bad database", conn: Conn{URL: "redis://:secret1@h1:7000/x"}, wantErr: "entry 1"},
		{name: "not a URL", conn: Conn{URL: "redis://:secret1@h1:7000,%zz"}, wantErr: "entry 2 is not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := tt.conn.parse()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				for _, secret := range []string{"secret1", "secret2"} {
					assert.NotContains(t, err.Error(), secret, "an error must not show a password")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.mode, p.mode)
			if p.mode == Single {
				assert.Equal(t, tt.addrs, []string{p.single.Addr})
				assert.Equal(t, time.Second, p.single.ReadTimeout)
				return
			}
			assert.Equal(t, tt.addrs, p.multi.Addrs)
			assert.Equal(t, time.Second, p.multi.DialTimeout)
			if tt.mode == Sentinel {
				assert.Equal(t, "mymaster", p.multi.MasterName)
				assert.Equal(t, "masterpw", p.multi.Password, "the URL's password is the master's")
				assert.Equal(t, "spw", p.multi.SentinelPassword)
				assert.Equal(t, 3, p.multi.DB)
			}
			if p.multi.TLSConfig != nil {
				assert.Empty(t, p.multi.TLSConfig.ServerName, "each node verified by its own name")
			}
		})
	}
}

func FuzzConnParse(f *testing.F) {
	for _, s := range []string{"redis://127.0.0.1:6379/0", "redis://a:1,redis://b:2", "rediss://:p@a:1/0,rediss://:p@b:2/0", "unix:///x", ",", "redis://:p@h:1/x", "redis://[::1]:6379"} {
		f.Add(s, "")
		f.Add(s, "mymaster")
	}
	f.Fuzz(func(t *testing.T, url, master string) {
		p, err := Conn{URL: url, SentinelMaster: master}.parse()
		if err != nil {
			return
		}
		switch {
		case p.mode == Single && (p.single == nil || master != "" || strings.Count(url, ",") > 0 && len(strings.FieldsFunc(url, func(r rune) bool { return r == ',' })) > 1):
			// A list of more than one URL is never a single server.
			if p.single == nil || master != "" {
				t.Fatalf("single without options or with a master: %+v", p)
			}
		case p.mode != Single && (p.multi == nil || len(p.multi.Addrs) == 0):
			t.Fatalf("%s without addresses", p.mode)
		case p.mode == Cluster && p.multi.DB != 0:
			t.Fatalf("cluster with database %d", p.multi.DB)
		}
	})
}

// A single URL naming a node of a cluster is detected, and the client
// becomes a cluster client seeded with that node: it reaches every key.
func TestConnectDetectsClusterNode(t *testing.T) {
	cluster := redistest.SharedCluster(t)
	ctx := context.Background()
	client, mode, err := Connect(ctx, Conn{URL: "redis://" + cluster.Nodes[0].Addr() + "/0"})
	require.NoError(t, err)
	defer client.Close()
	assert.Equal(t, Cluster, mode)
	require.IsType(t, &redis.ClusterClient{}, client)
	c := New(client, Options{Prefix: redistest.Prefix(t, client)})
	var users []viswals.SealedUser
	for id := int64(1); id <= 50; id++ {
		users = append(users, sampleUser(id, viswals.Version{Load: 1, Line: 1}))
	}
	require.NoError(t, c.Put(ctx, users), "keys of every slot reached")

	_, _, err = Connect(ctx, Conn{URL: "redis://" + cluster.Nodes[0].Addr() + "/1"})
	require.ErrorContains(t, err, "names a node of a Redis Cluster, which has only database 0")

	// The list form is a cluster client without asking.
	client2, mode, err := Connect(ctx, Conn{URL: cluster.URL()})
	require.NoError(t, err)
	defer client2.Close()
	assert.Equal(t, Cluster, mode)
	require.NoError(t, New(client2, Options{}).Ping(ctx))
}

func TestConnectSingle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	redistest.Client(t)
	client, mode, err := Connect(ctx, Conn{URL: redistest.URL()})
	require.NoError(t, err)
	defer client.Close()
	assert.Equal(t, Single, mode)
	assert.IsType(t, &redis.Client{}, client)

	// Not answering: a single server is assumed, and the error says so.
	client, mode, err = Connect(ctx, Conn{URL: "redis://127.0.0.1:1/0", Timeout: 200 * time.Millisecond})
	require.Error(t, err)
	defer client.Close()
	assert.Equal(t, Single, mode)
	assert.Contains(t, err.Error(), "assuming a single server")
}

// A single-server client of a cluster node gets MOVED for the keys of
// other nodes; the error says what is wrong and how to fix it.
func TestMovedSaysHowToConfigure(t *testing.T) {
	cluster := redistest.SharedCluster(t)
	client := redis.NewClient(&redis.Options{Addr: cluster.Nodes[0].Addr()})
	defer client.Close()
	c := New(client, Options{Prefix: "test:moved:"})
	var users []viswals.SealedUser
	for id := int64(1); id <= 50; id++ {
		users = append(users, sampleUser(id, viswals.Version{Load: 1, Line: 1}))
	}
	err := c.PutNew(context.Background(), users)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "list the cluster's nodes in REDIS_CONN_URL")
	// Whatever landed on this node goes.
	cc := cluster.Client()
	defer cc.Close()
	for _, u := range users {
		cc.Del(context.Background(), c.Key(u.ID))
	}
}
