package config

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedactURLList(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://:pw1@h1:7000,redis://:pw2@h2:7001": "redis://:xxxxx@h1:7000,redis://:xxxxx@h2:7001",
		"redis://h1:7000":           "redis://h1:7000",
		"redis://:pw1@h1:7000, %zz": "(malformed URL list, not shown)",
	} {
		assert.Equal(t, want, RedactURLList(in), in)
	}
}

// A list of Redis nodes is shown with every password replaced, and a bad
// entry is named by its place, not shown.
func TestRedisURLList(t *testing.T) {
	t.Parallel()
	list := "redis://:pw1@h1:7000,redis://:pw2@h2:7001"
	var out bytes.Buffer
	_, _, _ = ParseConsumer("consumer", []string{"--help"}, env(map[string]string{"REDIS_CONN_URL": list}), &out)
	assert.Contains(t, out.String(), "redis://:xxxxx@h1:7000,redis://:xxxxx@h2:7001")
	assert.NotContains(t, out.String(), "pw2")

	c, _, err := ParseConsumer("consumer", nil, env(map[string]string{"REDIS_CONN_URL": list, "REDIS_SENTINEL_MASTER": "m", "REDIS_SENTINEL_PASSWORD": "spw"}), &out)
	require.NoError(t, err)
	assert.Equal(t, list, c.RedisURL)
	assert.Equal(t, "m", c.RedisSentinelMaster)
	assert.Equal(t, "spw", c.RedisSentinelPassword)

	out.Reset()
	_, _, err = ParseConsumer("consumer", nil, env(map[string]string{"REDIS_CONN_URL": "redis://:pw1@h1:7000,redis://:pw2@h2:%zz"}), &out)
	require.ErrorIs(t, err, ErrUsage)
	assert.Contains(t, err.Error(), "REDIS_CONN_URL (entry 2) is not a valid URL")
	assert.NotContains(t, err.Error()+out.String(), "pw2")
}
