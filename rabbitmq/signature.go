package rabbitmq

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"log/slog"
	"strings"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/viswals/viswals"
)

// HeaderSignature carries a message's signature: "v1=" and the lowercase
// hex of HMAC-SHA256, under the ingest signing key, of the message's
// content type and body (see Signer).
const HeaderSignature = "x-signature"

// signatureScheme prefixes every signature; a later scheme gets a new name
// so that a consumer can tell which one it is reading.
const signatureScheme = "v1="

// MinSigningKeyLen is the shortest ingest signing key accepted, in bytes.
const MinSigningKeyLen = 32

// Signer signs and verifies messages with the ingest signing key. The MAC
// covers the content type as well as the body: the content type says how
// the body is read (gob or JSON, emails sealed or not), so a publisher
// without the key cannot relabel a signed body either. The content type is
// length-prefixed so that no two (content type, body) pairs share an input.
// It is safe for concurrent use.
type Signer struct {
	macs sync.Pool // of hash.Hash keyed with the key
}

// NewSigner returns a Signer with key, the INGEST_SIGNING_KEY setting. The
// key is used as the bytes of the string as given (no decoding), so that
// publishers in any language compute the same MAC from the same setting.
// It must be at least MinSigningKeyLen bytes and look random; errors never
// contain the key.
func NewSigner(key string) (*Signer, error) {
	if len(key) < MinSigningKeyLen {
		return nil, viswals.Errorf(viswals.EINVALID, "INGEST_SIGNING_KEY is %d bytes, want at least %d; generate one with: openssl rand -base64 32", len(key), MinSigningKeyLen)
	}
	distinct := map[rune]bool{}
	for _, r := range key {
		distinct[r] = true
	}
	// A random base64 key of 44 characters has about 30 distinct ones.
	if len(distinct) < 12 {
		return nil, viswals.Errorf(viswals.EINVALID, "INGEST_SIGNING_KEY is weak: only %d distinct characters; generate one with: openssl rand -base64 32", len(distinct))
	}
	k := []byte(key)
	s := &Signer{}
	s.macs.New = func() any { return hmac.New(sha256.New, k) }
	return s, nil
}

// Sign returns the HeaderSignature value for a message.
func (s *Signer) Sign(contentType string, body []byte) string {
	sum := s.mac(contentType, body)
	return signatureScheme + hex.EncodeToString(sum)
}

// Verify checks the HeaderSignature value of a message (nil when the
// message has none) before anything reads the body. Its error says what
// is wrong, for the dead-letter reason; the comparison takes constant
// time.
func (s *Signer) Verify(header any, contentType string, body []byte) error {
	if header == nil {
		return viswals.Errorf(viswals.EINVALID, "unsigned: no %s header, and INGEST_SIGNING_KEY is set", HeaderSignature)
	}
	v, ok := header.(string)
	if !ok {
		return viswals.Errorf(viswals.EINVALID, "bad signature: the %s header is a %T, not a string", HeaderSignature, header)
	}
	got, err := ParseSignature(v)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, s.mac(contentType, body)) {
		return viswals.Errorf(viswals.EINVALID, "bad signature: the %s header does not match the content type and body (another key, or altered)", HeaderSignature)
	}
	return nil
}

func (s *Signer) mac(contentType string, body []byte) []byte {
	h := s.macs.Get().(hash.Hash)
	defer s.macs.Put(h)
	h.Reset()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(contentType)))
	h.Write(n[:])
	h.Write([]byte(contentType))
	h.Write(body)
	return h.Sum(make([]byte, 0, sha256.Size))
}

// ParseSignature reads a HeaderSignature value: "v1=" and 64 hex digits.
// Its errors quote at most the start of a value that is not one.
func ParseSignature(v string) ([]byte, error) {
	hexSum, ok := strings.CutPrefix(v, signatureScheme)
	if !ok {
		scheme, _, found := strings.Cut(v, "=")
		if !found || len(scheme) > 16 {
			return nil, viswals.Errorf(viswals.EINVALID, "bad signature: the %s header is not %s<hex>", HeaderSignature, signatureScheme)
		}
		return nil, viswals.Errorf(viswals.EINVALID, "bad signature: unknown scheme %q in the %s header, want %q", scheme, HeaderSignature, strings.TrimSuffix(signatureScheme, "="))
	}
	if len(hexSum) != 2*sha256.Size {
		return nil, viswals.Errorf(viswals.EINVALID, "bad signature: want %d hex digits after %s, got %d characters", 2*sha256.Size, signatureScheme, len(hexSum))
	}
	sum, err := hex.DecodeString(hexSum)
	if err != nil {
		return nil, viswals.Errorf(viswals.EINVALID, "bad signature: the %s header is not hex: %v", HeaderSignature, err)
	}
	return sum, nil
}

// Verified returns a Handler that checks the signature of each delivery
// before h sees it: an unsigned or badly signed delivery is dead-lettered
// as it is, with the reason, and never decoded. The parts h dead-letters
// are new bodies, which the delivery's signature does not cover: they are
// signed anew, since their records come from a delivery that was verified,
// so that replaying them works. A whole delivery h dead-letters keeps its
// own signature, which still matches its body on replay.
//
// A refused delivery's headers are no more trusted than its body, so it
// is counted in no load: refused, when set, is told the load its header
// names (if any), only so that a producer following that load can learn
// that the load will not complete (see rabbitmq.LoadEvents).
func Verified(s *Signer, h Handler, log *slog.Logger, refused func(load int64)) Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, d Delivery) Outcome {
		if err := s.Verify(d.Headers[HeaderSignature], d.ContentType, d.Body); err != nil {
			log.Warn("dead-lettering a message that fails its signature check", "message_id", d.MessageID, "bytes", len(d.Body), "err", err)
			if load, ok := loadOf(d); ok && refused != nil {
				refused(load)
			}
			return DeadLetter{Reason: err.Error()}
		}
		out := h(ctx, d)
		if o, ok := out.(DeadLetterParts); ok {
			for i, p := range o.Parts {
				if o.Parts[i].Headers == nil {
					o.Parts[i].Headers = amqp.Table{}
				}
				o.Parts[i].Headers[HeaderSignature] = s.Sign(d.ContentType, p.Body)
			}
		}
		return out
	}
}
