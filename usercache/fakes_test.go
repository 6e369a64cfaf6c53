package usercache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/viswals/viswals"
)

// memSource is a fake Source: users in a map, reads counted, failures
// injected.
type memSource struct {
	mu     sync.Mutex
	users  map[int64]viswals.SealedUser
	getErr error
	gets   int
}

func newMemSource(users ...viswals.SealedUser) *memSource {
	s := &memSource{users: map[int64]viswals.SealedUser{}}
	for _, u := range users {
		s.users[u.ID] = u
	}
	return s
}

func (s *memSource) Get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if s.getErr != nil {
		return viswals.SealedUser{}, s.getErr
	}
	u, ok := s.users[id]
	if !ok {
		return viswals.SealedUser{}, viswals.Errorf(viswals.ENOTFOUND, "user %d not found", id)
	}
	return u, nil
}

func (s *memSource) List(ctx context.Context, f viswals.Filter, afterID int64, limit int, fn func(viswals.SealedUser) error) error {
	s.mu.Lock()
	var page []viswals.SealedUser
	for _, u := range s.users {
		if u.ID > afterID && strings.HasPrefix(u.FirstName, f.FirstName) && strings.HasPrefix(u.LastName, f.LastName) {
			page = append(page, u)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(page, func(a, b viswals.SealedUser) int { return cmp.Compare(a.ID, b.ID) })
	for _, u := range page[:min(limit, len(page))] {
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

// memCache is a fake Cache that can be down or hold corrupt values.
type memCache struct {
	mu      sync.Mutex
	users   map[int64]viswals.SealedUser
	corrupt map[int64]bool
	down    bool
	gets    int
	puts    int
}

func newMemCache() *memCache {
	return &memCache{users: map[int64]viswals.SealedUser{}, corrupt: map[int64]bool{}}
}

var errCorrupt = errors.New("corrupt cache value")

func (c *memCache) Get(ctx context.Context, id int64) (viswals.SealedUser, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	switch {
	case c.down:
		return viswals.SealedUser{}, viswals.Errorf(viswals.EUNAVAILABLE, "redis down")
	case c.corrupt[id]:
		return viswals.SealedUser{}, fmt.Errorf("user %d: %w", id, errCorrupt)
	}
	u, ok := c.users[id]
	if !ok {
		return viswals.SealedUser{}, viswals.Errorf(viswals.ENOTFOUND, "not cached")
	}
	return u, nil
}

func (c *memCache) Put(ctx context.Context, users []viswals.SealedUser) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puts++
	if c.down {
		return viswals.Errorf(viswals.EUNAVAILABLE, "redis down")
	}
	for _, u := range users {
		c.users[u.ID] = u
		delete(c.corrupt, u.ID)
	}
	return nil
}

// fakeKeys "seals" an email as "sealed:" + email.
type fakeKeys struct{}

func seal(u viswals.User) viswals.SealedUser {
	return viswals.SealedUser{ID: u.ID, FirstName: u.FirstName, LastName: u.LastName,
		EmailSealed: "sealed:" + u.Email, CreatedAt: u.CreatedAt, DeletedAt: u.DeletedAt,
		MergedAt: u.MergedAt, ParentUserID: u.ParentUserID}
}

func (fakeKeys) Open(s viswals.SealedUser) (viswals.User, error) {
	email, ok := strings.CutPrefix(s.EmailSealed, "sealed:")
	if !ok {
		return viswals.User{}, errors.New("cannot open email")
	}
	return viswals.User{ID: s.ID, FirstName: s.FirstName, LastName: s.LastName, Email: email,
		CreatedAt: s.CreatedAt, DeletedAt: s.DeletedAt, MergedAt: s.MergedAt, ParentUserID: s.ParentUserID}, nil
}

// testUser returns a plausible user with the given id and names.
func testUser(id int64, first, last string) viswals.SealedUser {
	return seal(viswals.User{ID: id, FirstName: first, LastName: last,
		Email:     fmt.Sprintf("user%d@example.com", id),
		CreatedAt: time.UnixMilli(1700000000000 + id).UTC()})
}
