package viswals

import (
	"strconv"
	"strings"
	"time"
)

// A load is one producer run, named by its id: the Load of the versions it
// stamps on its rows (its start time in unix nanoseconds). The producer
// reports what it read in a last message, the LoadSummary; the consumer
// counts what it did with the load's rows in a Tally; the two make the
// load's record, LoadRecord, which says whether every row landed.

// LoadSummary is the producer's account of a load, in rows.
type LoadSummary struct {
	Load      int64 `json:"load"`
	Read      int64 `json:"read"`
	Published int64 `json:"published"`
	Rejected  int64 `json:"rejected"`
}

// Tally counts the rows of a load the consumer took, by outcome: Received
// is the sum of the others.
type Tally struct {
	Received     int64 `json:"received"`
	Inserted     int64 `json:"inserted"`      // new ids
	Updated      int64 `json:"updated"`       // changed the content of a stored user
	Unchanged    int64 `json:"unchanged"`     // same content as stored, older than stored, or superseded in its message
	DeadLettered int64 `json:"dead_lettered"` // refused, and sent to the dead-letter queue
}

// Add adds u to t.
func (t *Tally) Add(u Tally) {
	t.Received += u.Received
	t.Inserted += u.Inserted
	t.Updated += u.Updated
	t.Unchanged += u.Unchanged
	t.DeadLettered += u.DeadLettered
}

// Receipt is one message's share of a load, handed to the store with the
// message's users so that it is counted in the transaction that commits
// them, and once however often the message is delivered.
type Receipt struct {
	Load    int64
	Message string // the same for every delivery of the message
	Refused int64  // rows refused before they reached the store (dead-lettered)
	// Replayed marks a dead letter of the load moved back to its queue:
	// its rows were counted, as dead-lettered, when they were
	// dead-lettered. They now move to what becomes of them (received does
	// not grow), so a load whose dead letters are replayed and committed
	// can become complete. Message is then the dead letter's own key.
	Replayed bool

	// Set by the store: what the message added to the load's outcomes
	// (for a replayed one, none to Received or DeadLettered).
	Tally   Tally
	Counted bool       // false: the message had been counted before
	Record  LoadRecord // the load's record after the commit
}

// LoadRecord is what is known of a load.
type LoadRecord struct {
	ID int64 `json:"id"`
	// Summary is nil until the producer's last message arrived.
	Summary *LoadSummary `json:"summary"`
	Tally
	// Zero until the first message of the load is committed.
	FirstCommit time.Time `json:"first_commit_at"`
	LastCommit  time.Time `json:"last_commit_at"`
	// UnverifiedMessages is set only in what consumers tell a producer
	// following its load (never stored or served): messages naming this
	// load were dead-lettered for a missing or bad signature. Their
	// headers cannot be trusted, so nothing of them is counted; but a
	// load of the producer's that loses a message so will not complete.
	UnverifiedMessages int64 `json:"unverified_messages,omitempty"`
}

// Merge returns what r and o together say of one load, when they were
// read at different times, in any order: its counts only grow, so the
// greater of each wins.
func (r LoadRecord) Merge(o LoadRecord) LoadRecord {
	if o.Received > r.Received || (o.Received == r.Received && o.LastCommit.After(r.LastCommit)) {
		r.Tally, r.LastCommit = o.Tally, o.LastCommit
	}
	if r.FirstCommit.IsZero() || (!o.FirstCommit.IsZero() && o.FirstCommit.Before(r.FirstCommit)) {
		r.FirstCommit = o.FirstCommit
	}
	if r.Summary == nil {
		r.Summary = o.Summary
	}
	r.UnverifiedMessages = max(r.UnverifiedMessages, o.UnverifiedMessages)
	return r
}

// Load states.
const (
	// LoadComplete: the summary arrived and every row the producer
	// published was committed.
	LoadComplete = "complete"
	// LoadDeadLettered: every published row was accounted for, but some
	// went to the dead-letter queue.
	LoadDeadLettered = "dead_lettered"
	// LoadIncomplete: rows are still on their way, or the summary is:
	// in progress, or lost (a lost summary never reads as done).
	LoadIncomplete = "incomplete"
)

// State is LoadComplete, LoadDeadLettered or LoadIncomplete.
func (r LoadRecord) State() string {
	switch {
	case r.Summary == nil || r.Received < r.Summary.Published:
		return LoadIncomplete
	case r.DeadLettered > 0:
		return LoadDeadLettered
	}
	return LoadComplete
}

// Started is when the load's producer started: its id is that time.
func (r LoadRecord) Started() time.Time { return time.Unix(0, r.ID).UTC() }

// ParseLoadID reads a load id as URLs and the command line write it: a
// decimal integer >= 1, digits only.
func ParseLoadID(s string) (int64, error) {
	bad := func() error {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return Errorf(EINVALID, "load id must be a decimal integer >= 1, got %q", s)
	}
	if s == "" || len(s) > 19 || strings.Trim(s, "0123456789") != "" {
		return 0, bad()
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, bad()
	}
	return id, nil
}
