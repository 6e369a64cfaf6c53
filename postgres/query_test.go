package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
)

func TestGet_NotFound(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	_, err := s.Get(context.Background(), 42)
	require.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err), "%v", err)
	require.Equal(t, "user 42 not found", viswals.ErrorMessage(err))
}

func TestGetMany(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	a := user(3, "Ann", "Lee", "a", 1, 1)
	b := user(1, "Bo", "Ng", "b", 1, 2)
	upsert(t, s, a, b)
	got, err := s.GetMany(context.Background(), []int64{3, 99, 1})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3}, ids(got), "stored ids only, in id order")
	require.Equal(t, b.Version, got[0].Version)
	require.Equal(t, "Lee", got[1].LastName)
	none, err := s.GetMany(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestList_Filters(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	names := []struct{ first, last string }{
		1:  {"Zoë", "Smith"},
		2:  {"zoe", "SMITHERS"},
		3:  {"ZOË", "Smyth"},
		4:  {"Élodie", "Durand"},
		5:  {"élodie", "dupont"},
		6:  {"Elodie", "Durand"},
		7:  {"100%", "Pure"},
		8:  {"1000", "Pure"},
		9:  {"a_b", "under"},
		10: {"axb", "under"},
		11: {`back\slash`, "x"},
		12: {"back", "slash"},
		13: {"", ""},
		14: {"Ännchen", "Ölberg"},
	}
	var batch []viswals.SealedUser
	for id, n := range names {
		if id > 0 {
			batch = append(batch, user(int64(id), n.first, n.last, fmt.Sprintf("u%d@example.com", id), 1, int64(id)))
		}
	}
	upsert(t, s, batch...)

	for _, tc := range []struct {
		f    viswals.Filter
		want []int64
	}{
		{viswals.Filter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}},
		{viswals.Filter{FirstName: "zo"}, []int64{1, 2, 3}},
		{viswals.Filter{FirstName: "ZOË"}, []int64{1, 3}},
		{viswals.Filter{FirstName: "zoë"}, []int64{1, 3}},
		{viswals.Filter{FirstName: "ÉLODIE"}, []int64{4, 5}},
		{viswals.Filter{FirstName: "elodie"}, []int64{6}},
		{viswals.Filter{FirstName: "ä"}, []int64{14}},
		{viswals.Filter{LastName: "ö"}, []int64{14}},
		{viswals.Filter{LastName: "smith"}, []int64{1, 2}},
		{viswals.Filter{FirstName: "zo", LastName: "smith"}, []int64{1, 2}},
		{viswals.Filter{FirstName: "zoë", LastName: "SMITH"}, []int64{1}},
		{viswals.Filter{FirstName: "zoë", LastName: "durand"}, nil},
		{viswals.Filter{FirstName: "100%"}, []int64{7}},
		{viswals.Filter{FirstName: "%"}, nil},
		{viswals.Filter{FirstName: "a_"}, []int64{9}},
		{viswals.Filter{FirstName: "_"}, nil},
		{viswals.Filter{FirstName: `back\`}, []int64{11}},
		{viswals.Filter{FirstName: `\`}, nil},
		{viswals.Filter{FirstName: "'; DROP TABLE users; --"}, nil},
		{viswals.Filter{FirstName: "zoë-but-longer-than-any-name"}, nil},
	} {
		for _, pageSize := range []int{1, 2, 100} {
			got := listAll(t, s, tc.f, pageSize)
			require.Equal(t, tc.want, got, "filter %+v, page size %d", tc.f, pageSize)
		}
	}
}

func TestList_PagingWalksEveryIDOnce(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	var batch []viswals.SealedUser
	var want []int64
	for i := range 1000 {
		id := int64(i*7 + 3) // gaps
		batch = append(batch, user(id, fmt.Sprintf("N%d", i%3), "L", "x@example.com", 1, id))
		want = append(want, id)
	}
	upsert(t, s, batch...)
	for _, size := range []int{1, 7, 100, 999, 1000, 1001} {
		require.Equal(t, want, listAll(t, s, viswals.Filter{}, size), "page size %d", size)
	}
	// A filtered walk returns each match once, in order.
	var wantN1 []int64
	for i, id := range want {
		if i%3 == 1 {
			wantN1 = append(wantN1, id)
		}
	}
	require.Equal(t, wantN1, listAll(t, s, viswals.Filter{FirstName: "n1"}, 10))
}

func TestList_StopsOnCallbackError(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	upsert(t, s, user(1, "A", "A", "a@example.com", 1, 1), user(2, "B", "B", "b@example.com", 1, 2))
	stop := errors.New("client went away")
	calls := 0
	err := s.List(context.Background(), viswals.Filter{}, 0, 10, func(viswals.SealedUser) error {
		calls++
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, calls)
}

func TestList_BadInput(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	noop := func(viswals.SealedUser) error { return nil }
	err := s.List(context.Background(), viswals.Filter{}, 0, 0, noop)
	require.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
	// Text Postgres cannot hold is refused as invalid, never a 500.
	for _, prefix := range []string{"a\x00", "\xff"} {
		err = s.List(context.Background(), viswals.Filter{FirstName: prefix}, 0, 10, noop)
		require.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%q: %v", prefix, err)
	}
}

// Prefix filters need custom plans (see PLANS.md).
func TestOpen_ForcesCustomPlans(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	v, err := s.ShowSetting(context.Background(), "plan_cache_mode")
	require.NoError(t, err)
	require.Equal(t, "force_custom_plan", v)
}
