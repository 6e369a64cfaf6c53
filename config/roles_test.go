package config

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Roles
		wantErr string
	}{
		{"ingest,api", AllRoles, ""},
		{"api,ingest", AllRoles, ""},
		{"ingest", Roles{Ingest: true}, ""},
		{" API ", Roles{API: true}, ""},
		{"api,,api", Roles{API: true}, ""},
		{"", Roles{}, "no role given"},
		{" , ", Roles{}, "no role given"},
		{"ingest,web", Roles{}, `unknown role "web"`},
		{"all", Roles{}, `unknown role "all"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRoles(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			again, err := ParseRoles(got.String())
			require.NoError(t, err)
			assert.Equal(t, got, again, "String reads back")
		})
	}
}

func TestParseConsumerRoles(t *testing.T) {
	t.Parallel()
	c, _, err := ParseConsumer("consumer", nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, AllRoles, c.Roles, "both by default")
	c, _, err = ParseConsumer("consumer", []string{"--roles", "api"}, env(map[string]string{"CONSUMER_ROLES": "ingest"}), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, Roles{API: true}, c.Roles, "the flag wins over the environment")
	c, _, err = ParseConsumer("consumer", nil, env(map[string]string{"CONSUMER_ROLES": "ingest"}), &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, Roles{Ingest: true}, c.Roles)
	_, _, err = ParseConsumer("consumer", nil, env(map[string]string{"CONSUMER_ROLES": "ingest,reader"}), &bytes.Buffer{})
	require.ErrorIs(t, err, ErrUsage)
	assert.ErrorContains(t, err, `CONSUMER_ROLES): unknown role "reader"`)
}

func FuzzParseRoles(f *testing.F) {
	for _, s := range []string{"ingest,api", "api", "", ",", "INGEST , api", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoles(s)
		if err != nil {
			return
		}
		if !r.Ingest && !r.API {
			t.Fatalf("ParseRoles(%q) accepted no role", s)
		}
		if again, err := ParseRoles(r.String()); err != nil || again != r {
			t.Fatalf("ParseRoles(%q).String() = %q does not read back: %v %v", s, r.String(), again, err)
		}
	})
}
