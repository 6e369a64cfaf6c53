package httpapi_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
)

// A sealed email copied from one user's row to another's (someone with
// write access to the database) does not open there: the API answers 500
// naming the user, never the other user's email, and counts the failure.
// Other users are served as before.
func TestPGMovedCiphertextIsRefused(t *testing.T) {
	e := newPGEnv(t, "")
	failures := 0
	e.keys.OnOpenFailure(func() { failures++ })
	e.put(t, user(1, "Ann", "Lee"), user(2, "Bob", "Ray"), user(3, "Cy", "Zed"))

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `UPDATE users SET email_address = (SELECT email_address FROM users WHERE id = 2) WHERE id = 1`)
	require.NoError(t, err)

	var one struct {
		Status string        `json:"status"`
		Error  string        `json:"error"`
		Data   *viswals.User `json:"data"`
	}
	status := e.getJSON(t, "/users/1", &one)
	assert.Equal(t, 500, status)
	assert.Equal(t, "error", one.Status)
	assert.Contains(t, one.Error, "user 1")
	assert.Nil(t, one.Data)
	assert.Equal(t, 1, failures)

	var list page
	assert.Equal(t, 500, e.getJSON(t, "/users", &list), "a page is not served with a row that does not open")
	assert.Contains(t, list.Error, "user 1")

	var three page
	status = e.getJSON(t, "/users?first_name=Cy", &three)
	assert.Equal(t, 200, status)
	require.Len(t, three.Data, 1)
	assert.Equal(t, "u3@example.com", three.Data[0].Email)
}
