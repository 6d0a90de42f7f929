package s3_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

const benchSize = 64 << 20

func benchData() []byte {
	b := make([]byte, benchSize)
	rand.NewChaCha8([32]byte{7}).Read(b)
	return b
}

// noChecksums turns off the SDK's default CRC32 request checksums and
// response validation: the raw baseline moves bytes and nothing else.
func noChecksums(o *awss3.Options) {
	o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// BenchmarkPut64MiB: Store.Put (SHA-256 pass, 8 MiB multipart parts with
// SHA-256 part checksums, whole-object re-hash) against one raw PutObject
// without checksums, same server, same run.
func BenchmarkPut64MiB(b *testing.B) {
	s := newStore(b)
	data := benchData()
	b.Run("store", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := s.Put(b.Context(), "bench/put", bytes.NewReader(data), benchSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			_, err := s.Client().PutObject(b.Context(), &awss3.PutObjectInput{
				Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey("bench/raw")),
				Body: bytes.NewReader(data), ContentLength: aws.Int64(benchSize),
			}, noChecksums)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGet64MiB: Store.Get read to EOF (SHA-256 verification) against
// a raw GetObject without checksum mode.
func BenchmarkGet64MiB(b *testing.B) {
	s := newStore(b)
	data := benchData()
	ctx := b.Context()
	if _, err := s.Put(ctx, "bench/get", bytes.NewReader(data), benchSize); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Client().PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey("bench/rawget")),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(benchSize),
	}, noChecksums); err != nil {
		b.Fatal(err)
	}
	b.Run("store", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			rc, _, err := s.Get(b.Context(), "bench/get")
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil || n != benchSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			out, err := s.Client().GetObject(b.Context(), &awss3.GetObjectInput{
				Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey("bench/rawget")),
			}, noChecksums)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, out.Body)
			out.Body.Close()
			if err != nil || n != benchSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		}
	})
}
