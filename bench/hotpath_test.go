package bench

import (
	"bytes"
	"io"
	"testing"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/csvin"
	"github.com/viswals/viswals/emailcrypt"
	"github.com/viswals/viswals/rabbitmq"
)

// The CPU one row costs each process outside the services, per 1000-row
// message (the other benchmarks time each step alone, in their packages):
//
//	go test ./bench -run '^$' -bench . -benchmem

// sealedSink keeps the sealed batch alive, as the consumer keeps it for the
// stores, so the benchmark measures building it.
var sealedSink []viswals.SealedUser

// sampleCSV is 1000 rows as cmd/gencsv writes them.
func sampleCSV(b *testing.B) []byte {
	b.Helper()
	var buf bytes.Buffer
	buf.WriteString("id,first_name,last_name,email_address,created_at,deleted_at,merged_at,parent_user_id\n")
	for i := 1; i <= 1000; i++ {
		switch i % 3 {
		case 0:
			buf.WriteString("7,Zoltán,\"Smith, Jr.\",zoltan.smith.7@example.com,1719903461803,,,\n")
		case 1:
			buf.WriteString("8,Wei,Yılmaz,wei.yilmaz.8@example.com,1692388659801,1729800525943,-1,-1\n")
		default:
			buf.WriteString("9,Ann,O'Brien,ann.obrien.9@example.com,1692388659801,-1,1729800525943,3\n")
		}
	}
	return buf.Bytes()
}

func readAll(b *testing.B, data []byte) []viswals.Record {
	r, err := csvin.NewReader(bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]viswals.Record, 0, 1000)
	for {
		row, err := r.Next()
		if err == io.EOF {
			return recs
		}
		if err != nil || row.Err != nil {
			b.Fatal(err, row.Err)
		}
		recs = append(recs, row.Record)
	}
}

// BenchmarkProducerMessage: parse 1000 CSV rows and encode them as one gob
// message (the producer's work per message, publishing aside).
func BenchmarkProducerMessage(b *testing.B) {
	data := sampleCSV(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		recs := readAll(b, data)
		if _, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkConsumerMessage: decode a 1000-user gob message, validate and
// seal every user (the consumer's CPU per message before the stores).
func BenchmarkConsumerMessage(b *testing.B) {
	body, err := rabbitmq.Encode(rabbitmq.ContentTypeGob, readAll(b, sampleCSV(b)))
	if err != nil {
		b.Fatal(err)
	}
	keys, err := emailcrypt.New(bytes.Repeat([]byte{0x5a, 0x17, 0xc3, 0x88}, 8))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		recs, err := rabbitmq.Decode(rabbitmq.ContentTypeGob, body)
		if err != nil {
			b.Fatal(err)
		}
		sealed := make([]viswals.SealedUser, 0, len(recs))
		for i := range recs {
			if err := recs[i].Validate(); err != nil {
				b.Fatal(err)
			}
			s, err := keys.Seal(recs[i])
			if err != nil {
				b.Fatal(err)
			}
			sealed = append(sealed, s)
		}
		sealedSink = sealed
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "rows/s")
}
