package rabbitmq_test

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/rabbitmq"
)

var contentTypes = []string{rabbitmq.ContentTypeGob, rabbitmq.ContentTypeJSON}

func ptr[T any](v T) *T { return &v }

// ms is a time at millisecond precision, as the CSV carries them.
func ms(v int64) time.Time { return time.UnixMilli(v).UTC() }

func sampleRecords() []viswals.Record {
	return []viswals.Record{
		{
			User: viswals.User{
				ID: 1, FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com",
				CreatedAt: ms(1_700_000_000_123),
			},
			Version: viswals.Version{Load: 1_700_000_000_000_000_000, Line: 2},
		},
		{
			User: viswals.User{
				ID: 9_007_199_254_740_993, FirstName: "Zoë 李", LastName: `O'Brien, "Jr."`, Email: "zoë@例え.jp",
				CreatedAt:    ms(0),
				DeletedAt:    ptr(ms(1_600_000_000_001)),
				MergedAt:     ptr(ms(viswals.MaxUnixMilli)),
				ParentUserID: ptr(int64(1)),
			},
			Version: viswals.Version{Load: 42, Line: 1 << 40},
		},
		{
			User:    viswals.User{ID: 3, Email: "x@y", CreatedAt: ms(5)}, // empty names
			Version: viswals.Version{Load: 42, Line: 3},
		},
	}
}

// assertSameRecords compares records by value; times by instant, since a
// decoded time may carry another *time.Location for the same zone.
func assertSameRecords(t *testing.T, want, got []viswals.Record) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		assert.Equal(t, w.ID, g.ID, "record %d id", i)
		assert.Equal(t, w.FirstName, g.FirstName, "record %d", i)
		assert.Equal(t, w.LastName, g.LastName, "record %d", i)
		assert.Equal(t, w.Email, g.Email, "record %d", i)
		assert.True(t, w.CreatedAt.Equal(g.CreatedAt), "record %d created_at: %v != %v", i, w.CreatedAt, g.CreatedAt)
		assertSameTimePtr(t, w.DeletedAt, g.DeletedAt, "deleted_at")
		assertSameTimePtr(t, w.MergedAt, g.MergedAt, "merged_at")
		assert.Equal(t, w.ParentUserID, g.ParentUserID, "record %d parent", i)
		assert.Equal(t, w.Version, g.Version, "record %d version", i)
	}
}

func assertSameTimePtr(t *testing.T, want, got *time.Time, field string) {
	t.Helper()
	if want == nil || got == nil {
		assert.Equal(t, want == nil, got == nil, "%s nullness", field)
		return
	}
	assert.True(t, want.Equal(*got), "%s: %v != %v", field, *want, *got)
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ct := range contentTypes {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			want := sampleRecords()
			body, err := rabbitmq.Encode(ct, want)
			require.NoError(t, err)
			got, err := rabbitmq.Decode(ct, body)
			require.NoError(t, err)
			assertSameRecords(t, want, got)
		})
	}
}

func TestCodecEmptyBatch(t *testing.T) {
	t.Parallel()
	for _, ct := range contentTypes {
		for _, in := range [][]viswals.Record{nil, {}} {
			body, err := rabbitmq.Encode(ct, in)
			require.NoError(t, err, ct)
			got, err := rabbitmq.Decode(ct, body)
			require.NoError(t, err, ct)
			assert.Empty(t, got, ct)
		}
	}
}

func TestJSONWireFormat(t *testing.T) {
	t.Parallel()
	body, err := rabbitmq.Encode(rabbitmq.ContentTypeJSON, sampleRecords()[1:2])
	require.NoError(t, err)
	assert.JSONEq(t, `[{
		"id": 9007199254740993, "first_name": "Zoë 李", "last_name": "O'Brien, \"Jr.\"",
		"email_address": "zoë@例え.jp", "created_at": "1970-01-01T00:00:00Z",
		"deleted_at": "2020-09-13T12:26:40.001Z", "merged_at": "9999-12-31T23:59:59.999Z",
		"parent_user_id": 1, "version": {"load": 42, "line": 1099511627776}
	}]`, string(body))
}

// A producer not written in Go sends the API's user objects, with nulls
// and without a version; charset parameters are allowed.
func TestJSONFromOtherProducers(t *testing.T) {
	t.Parallel()
	body := []byte(`[
		{"id": 7, "first_name": "Émile", "last_name": "", "email_address": "e@x.fr",
		 "created_at": "2021-03-04T05:06:07.089+01:00", "deleted_at": null, "merged_at": null, "parent_user_id": null},
		{"id": 8, "first_name": "B", "last_name": "C", "email_address": "b@c",
		 "created_at": "2021-03-04T05:06:07Z", "parent_user_id": 7}
	]`)
	got, err := rabbitmq.Decode("application/json; charset=utf-8", body)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, viswals.Version{}, got[0].Version, "a missing version decodes as zero; the consumer assigns one")
	assert.Equal(t, int64(1614830767089), got[0].CreatedAt.UnixMilli())
	assert.Nil(t, got[0].DeletedAt)
	assert.Nil(t, got[0].ParentUserID)
	assert.Equal(t, ptr(int64(7)), got[1].ParentUserID)
}

func TestDecodeUnknownContentType(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"", "text/plain", "application/xml", "application/json; charset=latin1", ";;;"} {
		_, err := rabbitmq.Decode(ct, []byte(`[]`))
		require.Error(t, err, "%q", ct)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%q", ct)
		if ct != "application/json; charset=latin1" {
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", ct))
		}
		_, err = rabbitmq.Encode(ct, sampleRecords())
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "encode %q", ct)
	}
}

func TestDecodeRejectsMalformedBodies(t *testing.T) {
	t.Parallel()
	gobOther := func(v any) []byte {
		var b bytes.Buffer
		require.NoError(t, gob.NewEncoder(&b).Encode(v))
		return b.Bytes()
	}
	good, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, sampleRecords())
	require.NoError(t, err)
	cases := []struct {
		name, ct string
		body     []byte
		want     string // part of the error message
	}{
		{"json empty", rabbitmq.ContentTypeJSON, nil, "malformed JSON"},
		{"json garbage", rabbitmq.ContentTypeJSON, []byte("\x00\xffnot json"), "malformed JSON"},
		{"json object", rabbitmq.ContentTypeJSON, []byte(`{"id":1}`), "want an array"},
		{"json null", rabbitmq.ContentTypeJSON, []byte(`null`), "want an array"},
		{"json truncated", rabbitmq.ContentTypeJSON, []byte(`[{"id":1}`), "malformed JSON"},
		{"json trailing", rabbitmq.ContentTypeJSON, []byte(`[] []`), "trailing data"},
		{"json unknown field", rabbitmq.ContentTypeJSON, []byte(`[{"id":1,"email":"a@b"}]`), `unknown field "email"`},
		{"json wrong type", rabbitmq.ContentTypeJSON, []byte(`[{"id":"1"}]`), "user 1"},
		{"json bad time", rabbitmq.ContentTypeJSON, []byte(`[{"id":1},{"id":2,"created_at":"yesterday"}]`), "user 2"},
		{"json element not object", rabbitmq.ContentTypeJSON, []byte(`[1]`), "user 1"},
		{"gob empty", rabbitmq.ContentTypeGob, nil, "malformed gob"},
		{"gob garbage", rabbitmq.ContentTypeGob, []byte("garbage, not gob"), "malformed gob"},
		{"gob truncated", rabbitmq.ContentTypeGob, good[:len(good)/2], "malformed gob"},
		{"gob trailing", rabbitmq.ContentTypeGob, append(append([]byte{}, good...), 1, 2, 3), "trailing data"},
		{"gob other type", rabbitmq.ContentTypeGob, gobOther([]string{"a"}), "malformed gob"},
		{"gob struct", rabbitmq.ContentTypeGob, gobOther(struct{ A int }{1}), "malformed gob"},
		{"json as gob", rabbitmq.ContentTypeGob, []byte(`[{"id":1}]`), "malformed gob"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := rabbitmq.Decode(tc.ct, tc.body)
			require.Error(t, err)
			assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	t.Parallel()
	t.Run("body size", func(t *testing.T) {
		t.Parallel()
		big := make([]byte, rabbitmq.MaxBodyBytes+1)
		for _, ct := range contentTypes {
			_, err := rabbitmq.Decode(ct, big)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "exceeds the limit")
		}
	})
	t.Run("json records", func(t *testing.T) {
		t.Parallel()
		body := "[" + strings.Repeat(`{},`, rabbitmq.MaxBatchRecords) + "{}]"
		_, err := rabbitmq.Decode(rabbitmq.ContentTypeJSON, []byte(body))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "more than")
	})
	t.Run("gob records", func(t *testing.T) {
		t.Parallel()
		recs := make([]viswals.Record, rabbitmq.MaxBatchRecords+1)
		var b bytes.Buffer
		require.NoError(t, gob.NewEncoder(&b).Encode(recs))
		_, err := rabbitmq.Decode(rabbitmq.ContentTypeGob, b.Bytes())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "over the limit")
		_, err = rabbitmq.Encode(rabbitmq.ContentTypeGob, recs)
		assert.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
	})
	t.Run("gob declared count without the records", func(t *testing.T) {
		t.Parallel()
		// An empty batch ends with the message [len][type id (1 or 2
		// bytes)][delta 0][count 0]; rewrite it to declare 200,000
		// records that are not there. Decode must refuse before
		// allocating for them.
		body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, nil)
		require.NoError(t, err)
		n := len(body)
		k := 3 // the value message's length
		if body[n-1-k] != byte(k) {
			k = 4
		}
		require.Equal(t, byte(k), body[n-1-k])
		require.Equal(t, []byte{0, 0}, body[n-2:])
		typeID := body[n-k : n-2]
		forged := append(body[:n-1-k:n-1-k], byte(k+3))
		forged = append(forged, typeID...)
		forged = append(forged, 0, 0xFD, 0x03, 0x0D, 0x40)
		_, err = rabbitmq.Decode(rabbitmq.ContentTypeGob, forged)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "declares 200000 records")
	})
}

func TestGobBatchLenMatchesEncoder(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 127, 128, 255, 256, 70_000} {
		recs := make([]viswals.Record, n)
		for i := range recs {
			recs[i].ID = int64(i + 1)
		}
		body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, recs)
		require.NoError(t, err)
		got, err := rabbitmq.GobBatchLen(body)
		require.NoError(t, err)
		assert.Equal(t, uint64(n), got)
	}
}

func FuzzDecode(f *testing.F) {
	for _, ct := range contentTypes {
		body, err := rabbitmq.Encode(ct, sampleRecords())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct, body)
	}
	f.Add(rabbitmq.ContentTypeJSON, []byte(`[{"id":1,"version":{"load":1,"line":2}}, null]`))
	f.Add(rabbitmq.ContentTypeJSON, []byte(`[`))
	f.Add(rabbitmq.ContentTypeGob, []byte{0x03, 0xff, 0x81, 0x00})
	f.Add("text/plain", []byte("x"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		recs, err := rabbitmq.Decode(ct, body)
		if err != nil {
			if code := viswals.ErrorCode(err); code != viswals.EINVALID {
				t.Fatalf("error code %q, want %q: %v", code, viswals.EINVALID, err)
			}
			return
		}
		if len(recs) > rabbitmq.MaxBatchRecords {
			t.Fatalf("decoded %d records, over the limit", len(recs))
		}
		// Whatever decodes must encode and decode to the same records.
		mt := rabbitmq.ContentTypeGob
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), rabbitmq.ContentTypeJSON) {
			mt = rabbitmq.ContentTypeJSON
		}
		again, err := rabbitmq.Encode(mt, recs)
		if err != nil {
			return // e.g. a time JSON cannot print; not Decode's concern
		}
		if _, err := rabbitmq.Decode(mt, again); err != nil {
			t.Fatalf("re-decode of encoded records: %v", err)
		}
	})
}

// benchmarkBatch is 1000 realistic users: the default batch size range.
func benchmarkBatch() []viswals.Record {
	recs := make([]viswals.Record, 1000)
	for i := range recs {
		recs[i] = viswals.Record{
			User: viswals.User{
				ID:        int64(i + 1),
				FirstName: fmt.Sprintf("First%d", i),
				LastName:  fmt.Sprintf("Last-Name-%d", i),
				Email:     fmt.Sprintf("user.%d@example.com", i),
				CreatedAt: ms(1_600_000_000_000 + int64(i)*1000),
			},
			Version: viswals.Version{Load: 1_700_000_000_000_000_000, Line: int64(i + 2)},
		}
		if i%3 == 0 {
			recs[i].DeletedAt = ptr(ms(1_650_000_000_000 + int64(i)))
			recs[i].ParentUserID = ptr(int64(i))
		}
	}
	return recs
}

func benchmarkEncode(b *testing.B, ct string) {
	recs := benchmarkBatch()
	body, _ := rabbitmq.Encode(ct, recs)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rabbitmq.Encode(ct, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(body))/float64(len(recs)), "B/user")
}

func benchmarkDecode(b *testing.B, ct string) {
	body, err := rabbitmq.Encode(ct, benchmarkBatch())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rabbitmq.Decode(ct, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeGob(b *testing.B)  { benchmarkEncode(b, rabbitmq.ContentTypeGob) }
func BenchmarkEncodeJSON(b *testing.B) { benchmarkEncode(b, rabbitmq.ContentTypeJSON) }
func BenchmarkDecodeGob(b *testing.B)  { benchmarkDecode(b, rabbitmq.ContentTypeGob) }
func BenchmarkDecodeJSON(b *testing.B) { benchmarkDecode(b, rabbitmq.ContentTypeJSON) }
