package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/runnel-ci/runnel/artifact"
	artifacts3 "github.com/runnel-ci/runnel/artifact/s3"
	"github.com/runnel-ci/runnel/artifact/storetest"
)

var storeSeq atomic.Int64

// newStore returns a store on a fresh prefix of the shared bucket.
func newStore(t testing.TB) *artifacts3.Store {
	t.Helper()
	g := needGateway(t)
	s, err := artifacts3.New(t.Context(), g.config(fmt.Sprintf("t%d/", storeSeq.Add(1))))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	needGateway(t)
	storetest.Run(t, func() artifact.Store { return newStore(t) }, storetest.Options{
		// Overwrite the bytes through the raw API, keeping the recorded
		// sha256 metadata but sending no S3 checksum.
		Corrupt: func(t *testing.T, s artifact.Store, key string) {
			st := s.(*artifacts3.Store)
			ctx := t.Context()
			head, err := st.Client().HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String(st.ObjectKey(key))})
			if err != nil {
				t.Fatal(err)
			}
			body := []byte("these are not the bytes you are looking for")
			_, err = st.Client().PutObject(ctx, &awss3.PutObjectInput{
				Bucket:   aws.String(st.Bucket()),
				Key:      aws.String(st.ObjectKey(key)),
				Body:     bytes.NewReader(body),
				Metadata: head.Metadata,
			}, func(o *awss3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
			if err != nil {
				t.Fatal(err)
			}
		},
	})
}

// changingReader returns different bytes on its second pass, so the
// checksum Put computed first no longer matches what it uploads.
type changingReader struct {
	data   []byte
	off    int64
	passes int
}

func (c *changingReader) Read(p []byte) (int, error) {
	if c.off >= int64(len(c.data)) {
		return 0, io.EOF
	}
	n := copy(p, c.data[c.off:])
	if c.passes > 0 {
		for i := range p[:n] {
			p[i] ^= 0xff
		}
	}
	c.off += int64(n)
	return n, nil
}

func (c *changingReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		if off == 0 && c.off > 0 {
			c.passes++
		}
		c.off = off
	case io.SeekCurrent:
		c.off += off
	default:
		return 0, errors.New("unsupported whence")
	}
	return c.off, nil
}

// The server checks the precomputed x-amz-checksum-sha256: bytes that
// differ from the checksum are refused with BadDigest and nothing is stored.
func TestPutSendsChecksum(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, size := range []int{1000, artifacts3.MinPartSize + 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("changing/%d", size)
			data := bytes.Repeat([]byte{'a'}, size)
			_, err := s.Put(ctx, key, &changingReader{data: data}, int64(size))
			if err == nil {
				t.Fatal("Put of content that changed after hashing: got nil error")
			}
			var api smithy.APIError
			if size < artifacts3.MinPartSize {
				if !errors.As(err, &api) || api.ErrorCode() != "BadDigest" {
					t.Errorf("Put error = %v, want the server's BadDigest", err)
				}
			} else if !errors.Is(err, artifact.ErrChecksum) {
				// Multipart: parts carry their own checksums computed
				// on the second pass; the whole-object check refuses.
				t.Errorf("Put error = %v, want ErrChecksum", err)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, artifact.ErrNotFound) {
				t.Errorf("Stat after refused Put: got %v, want ErrNotFound", err)
			}
		})
	}
}

// A raw PutObject with a wrong x-amz-checksum-sha256 is refused: the test
// server really checks (gofakes3 and friends do not).
func TestServerRejectsWrongChecksum(t *testing.T) {
	s := newStore(t)
	wrong := sha256.Sum256([]byte("something else"))
	_, err := s.Client().PutObject(t.Context(), &awss3.PutObjectInput{
		Bucket:            aws.String(s.Bucket()),
		Key:               aws.String(s.ObjectKey("wrong")),
		Body:              strings.NewReader("payload"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(b64(wrong[:])),
	})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "BadDigest" {
		t.Errorf("PutObject with wrong checksum: got %v, want BadDigest", err)
	}
}

// Objects are stored with S3's own SHA-256 checksum, which GetObject
// returns with ChecksumMode ENABLED.
func TestStoredChecksum(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := []byte("checked by S3 too")
	if _, err := s.Put(ctx, "k", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	out, err := s.Client().GetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey("k")), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	want := sha256.Sum256(data)
	if got := aws.ToString(out.ChecksumSHA256); got != b64(want[:]) {
		t.Errorf("ChecksumSHA256 = %q, want %q", got, b64(want[:]))
	}
	if got := out.Metadata["sha256"]; got != hex.EncodeToString(want[:]) {
		t.Errorf("metadata sha256 = %q, want %q", got, hex.EncodeToString(want[:]))
	}
}

// An object written behind the store's back without the sha256 metadata
// cannot be verified, so Get refuses it.
func TestGetRefusesUnrecordedChecksum(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.Client().PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(s.Bucket()), Key: aws.String(s.ObjectKey("foreign")), Body: strings.NewReader("x"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "foreign"); !errors.Is(err, artifact.ErrChecksum) {
		t.Errorf("Get: got %v, want ErrChecksum", err)
	}
}

func TestPresign(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := []byte("shared with a presigned URL")
	if _, err := s.Put(ctx, "p/file", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	url, err := s.Presign(ctx, "p/file", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("GET presigned URL = %d %q, want 200 %q", resp.StatusCode, got, data)
	}
	// The signature covers the key: another key with the same query fails.
	other := strings.Replace(url, "p/file", "p/other", 1)
	resp, err = http.Get(other)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET tampered presigned URL = %d, want 403", resp.StatusCode)
	}
	// Presigned URL plus Fetcher: the download is verified by checksum.
	f := &artifact.Fetcher{Dir: t.TempDir()}
	sum := sha256.Sum256(data)
	p, err := f.Fetch(ctx, url, hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatalf("Fetch presigned URL: %v", err)
	}
	if !f.Cached(hex.EncodeToString(sum[:])) {
		t.Errorf("Cached after Fetch of %s = false, want true", p)
	}
}

func b64(b []byte) string {
	return base64Std(b)
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Bytes changed on the server's disk (versitygw's posix backend keeps the
// object as a plain file, its checksum and metadata in xattrs) are caught
// on Get: by the SDK's check of S3's checksum and by the store's own.
func TestCorruptOnServerDisk(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := []byte(strings.Repeat("0123456789", 100))
	if _, err := s.Put(ctx, "disk/victim", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(gw.dir, s.Bucket(), filepath.FromSlash(s.ObjectKey("disk/victim")))
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open object file on the server: %v", err)
	}
	if _, err := f.WriteAt([]byte("X"), 500); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rc, _, err := s.Get(ctx, "disk/victim")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, artifact.ErrChecksum) {
		t.Errorf("read corrupted object: %d bytes, error %v; want ErrChecksum", len(got), err)
	}
}

// TestPresignPut: a PUT to the presigned URL with its headers stores an
// object the store reads and verifies like its own; other content, or
// another length, is refused by the server.
func TestPresignPut(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := bytes.Repeat([]byte("presigned upload "), 1000)
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	put := func(body []byte) int {
		t.Helper()
		url, h, err := s.PresignPut(ctx, "up/file", int64(len(data)), hexSum, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1 // a length mismatch may end the connection
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tampered := bytes.Clone(data)
	tampered[100] ^= 1
	if code := put(tampered); code == http.StatusOK {
		t.Fatalf("PUT of other content: %d, want refused", code)
	}
	if _, err := s.Stat(ctx, "up/file"); !errors.Is(err, artifact.ErrNotFound) {
		t.Fatalf("Stat after a refused PUT: %v, want ErrNotFound", err)
	}
	if code := put(data); code != http.StatusOK {
		t.Fatalf("PUT: %d, want 200", code)
	}
	rc, info, err := s.Get(ctx, "up/file")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) || info.SHA256 != hexSum {
		t.Fatalf("Get = %d bytes, %v, sha %s; want the upload with sha %s", len(got), err, info.SHA256, hexSum)
	}
}
