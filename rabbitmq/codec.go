package rabbitmq

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"

	"github.com/viswals/viswals"
)

// Content types of a message body. Each body carries a batch of users.
const (
	// ContentTypeGob is the default: a gob stream holding one []viswals.Record.
	ContentTypeGob = "application/x-gob"
	// ContentTypeJSON is for producers not written in Go: an array of user
	// objects with the API's field names and an optional "version".
	ContentTypeJSON = "application/json"
)

// SealedEmails marks, as a parameter of the content type, a batch whose
// emails the producer sealed (producer --seal): "application/x-gob;
// emails=sealed". Being in the content type, it is covered by the
// signature.
const sealedParam, sealedValue = "emails", "sealed"

// WithSealedEmails returns contentType marked as holding sealed emails.
func WithSealedEmails(contentType string) string {
	return contentType + "; " + sealedParam + "=" + sealedValue
}

// EmailsSealed reports whether contentType marks sealed emails.
func EmailsSealed(contentType string) bool {
	_, params, err := mime.ParseMediaType(contentType)
	return err == nil && params[sealedParam] == sealedValue
}

// Bounds on what Decode accepts, so that one hostile or broken message
// cannot exhaust the consumer's memory. Encode refuses to produce anything
// Decode would refuse. MaxBodyBytes is also the broker's max_message_size
// in the compose file: only the broker can refuse a body before the
// consumer holds it (see docs/security.md).
const (
	MaxBodyBytes    = 16 << 20
	MaxBatchRecords = 100_000
)

// Encode serialises a batch of records in the given content type.
func Encode(contentType string, recs []viswals.Record) ([]byte, error) {
	if len(recs) > MaxBatchRecords {
		return nil, viswals.Errorf(viswals.EINVALID, "batch of %d records exceeds the limit of %d", len(recs), MaxBatchRecords)
	}
	if recs == nil {
		// A nil slice would encode as JSON null, which Decode rejects.
		recs = []viswals.Record{}
	}
	mt, err := mediaType(contentType)
	if err != nil {
		return nil, err
	}
	var body []byte
	switch mt {
	case ContentTypeGob:
		body, err = encodeGob(recs)
	case ContentTypeJSON:
		body, err = json.Marshal(recs)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s batch: %w", mt, err)
	}
	if len(body) > MaxBodyBytes {
		return nil, viswals.Errorf(viswals.EINVALID, "encoded batch is %d bytes, over the limit of %d: use smaller batches", len(body), MaxBodyBytes)
	}
	return body, nil
}

func encodeGob(recs []viswals.Record) ([]byte, error) {
	// A gob stream describes its types once, at its start, so an encoder
	// cannot be shared between messages: each body must decode on its own.
	// Growing the buffer up front saves the copies of repeated doubling;
	// 100 bytes per user is a little above the size BenchmarkEncodeGob
	// reports.
	var buf bytes.Buffer
	buf.Grow(256 + 100*len(recs))
	if err := gob.NewEncoder(&buf).Encode(recs); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode parses a message body into records. It is strict (unknown content
// types, unknown JSON fields, trailing data and oversized batches are
// errors) but does not validate the users: the consumer validates each one
// so that the good users of a batch still land. Every error has the code
// viswals.EINVALID: the message itself is bad and retrying cannot help.
func Decode(contentType string, body []byte) (recs []viswals.Record, err error) {
	mt, err := mediaType(contentType)
	if err != nil {
		return nil, err
	}
	if len(body) > MaxBodyBytes {
		return nil, viswals.Errorf(viswals.EINVALID, "%s body of %d bytes exceeds the limit of %d", mt, len(body), MaxBodyBytes)
	}
	// The decoders should turn any input into an error, but a body is
	// untrusted input and a panic would crash the consumer on every
	// redelivery of the message: make sure it can only ever dead-letter it.
	defer func() {
		if p := recover(); p != nil {
			recs, err = nil, viswals.Errorf(viswals.EINVALID, "malformed %s body: decoder failed: %v", mt, p)
		}
	}()
	switch mt {
	case ContentTypeGob:
		return decodeGob(body)
	default:
		return decodeJSON(body)
	}
}

// mediaType returns the known media type named by a Content-Type value,
// which may carry parameters ("application/json; charset=utf-8").
func mediaType(contentType string) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err == nil && (mt == ContentTypeGob || mt == ContentTypeJSON) {
		if cs, ok := params["charset"]; ok && mt == ContentTypeJSON && !equalFoldASCII(cs, "utf-8") {
			return "", viswals.Errorf(viswals.EINVALID, "unsupported charset %q in content type: JSON bodies must be UTF-8", cs)
		}
		return mt, nil
	}
	if len(contentType) > 100 {
		contentType = contentType[:100] + "..."
	}
	return "", viswals.Errorf(viswals.EINVALID, "unknown content type %q: want %q or %q", contentType, ContentTypeGob, ContentTypeJSON)
}

func equalFoldASCII(a, b string) bool {
	return len(a) == len(b) && bytes.EqualFold([]byte(a), []byte(b))
}

func decodeGob(body []byte) ([]viswals.Record, error) {
	// gob allocates a slice as large as the count the stream declares
	// (capped only by the body size), so read the count first.
	n, err := gobBatchLen(body)
	if err != nil {
		return nil, viswals.Errorf(viswals.EINVALID, "malformed gob body: %v", err)
	}
	if n > MaxBatchRecords {
		return nil, viswals.Errorf(viswals.EINVALID, "gob batch declares %d records, over the limit of %d", n, MaxBatchRecords)
	}
	r := bytes.NewReader(body) // an io.ByteReader: gob reads it without buffering ahead
	var recs []viswals.Record
	if err := gob.NewDecoder(r).Decode(&recs); err != nil {
		return nil, viswals.Errorf(viswals.EINVALID, "malformed gob body: %v", err)
	}
	if r.Len() > 0 {
		return nil, viswals.Errorf(viswals.EINVALID, "malformed gob body: %d bytes of trailing data after the batch", r.Len())
	}
	return recs, nil
}

// decodeJSON streams the array element by element so that the record limit
// applies before memory is spent on records beyond it.
//
// Unknown fields are errors (DisallowUnknownFields): a producer that
// misspells "deleted_at" or sends "email" instead of "email_address" would
// otherwise have the field silently read as null or empty and stored that
// way; rejecting the batch names the field and keeps it in the dead-letter
// queue until the producer is fixed. A null element decodes as a zero user,
// which validation then rejects on its own, like any other invalid user.
func decodeJSON(body []byte) ([]viswals.Record, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	tok, err := dec.Token()
	if err != nil {
		return nil, viswals.Errorf(viswals.EINVALID, "malformed JSON body: %v", err)
	}
	if tok != json.Delim('[') {
		return nil, viswals.Errorf(viswals.EINVALID, "malformed JSON body: want an array of users, got %s", describeToken(tok))
	}
	var recs []viswals.Record
	for dec.More() {
		if len(recs) == MaxBatchRecords {
			return nil, viswals.Errorf(viswals.EINVALID, "JSON batch has more than %d records", MaxBatchRecords)
		}
		var r viswals.Record
		if err := dec.Decode(&r); err != nil {
			return nil, viswals.Errorf(viswals.EINVALID, "malformed JSON body: user %d: %v", len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, viswals.Errorf(viswals.EINVALID, "malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, viswals.Errorf(viswals.EINVALID, "malformed JSON body: trailing data after the array")
	}
	if recs == nil {
		recs = []viswals.Record{}
	}
	return recs, nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

// gobBatchLen reads, from the framing of a gob stream holding one slice,
// the number of elements the slice declares, without decoding anything.
// A stream is a sequence of messages, each "length, type id, payload";
// type definitions have negative ids and precede the value, and a
// top-level non-struct value starts with field delta 0 and then, for a
// slice, its element count.
func gobBatchLen(body []byte) (uint64, error) {
	for rest := body; ; {
		size, r, err := gobUint(rest)
		if err != nil {
			return 0, fmt.Errorf("message length: %w", err)
		}
		if size > uint64(len(r)) {
			return 0, fmt.Errorf("message of %d bytes truncated to %d", size, len(r))
		}
		msg := r[:size]
		rest = r[size:]
		id, msg, err := gobInt(msg)
		if err != nil {
			return 0, fmt.Errorf("type id: %w", err)
		}
		if id < 0 {
			continue // a type definition
		}
		delta, msg, err := gobUint(msg)
		if err != nil || delta != 0 {
			return 0, errors.New("the value is not a batch of records")
		}
		n, _, err := gobUint(msg)
		if err != nil {
			return 0, fmt.Errorf("batch length: %w", err)
		}
		return n, nil
	}
}

var errGobTruncated = errors.New("truncated")

// gobUint decodes gob's unsigned integer: one byte below 0x80, otherwise
// the negated byte count followed by that many big-endian bytes.
func gobUint(b []byte) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, errGobTruncated
	}
	if b[0] < 0x80 {
		return uint64(b[0]), b[1:], nil
	}
	n := 256 - int(b[0]) // the byte holds -n
	if n > 8 {
		return 0, nil, errors.New("integer too long")
	}
	if len(b) < 1+n {
		return 0, nil, errGobTruncated
	}
	var x uint64
	for _, c := range b[1 : 1+n] {
		x = x<<8 | uint64(c)
	}
	return x, b[1+n:], nil
}

// gobInt decodes gob's signed integer: an unsigned one whose low bit is
// the sign (complemented when set).
func gobInt(b []byte) (int64, []byte, error) {
	u, rest, err := gobUint(b)
	if err != nil {
		return 0, nil, err
	}
	if u&1 == 1 {
		return ^int64(u >> 1), rest, nil
	}
	return int64(u >> 1), rest, nil
}
