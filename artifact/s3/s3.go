package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/runnel-ci/runnel/artifact"
)

// MinPartSize is S3's smallest multipart part (except the last); it is also
// the default part size and the size from which Put uploads in parts.
const MinPartSize = 8 << 20

// metaSHA256 is the user metadata field (x-amz-meta-sha256) holding the hex
// SHA-256 of the whole object.
const metaSHA256 = "sha256"

// Config says where the bucket is and how to reach it.
type Config struct {
	Bucket string // required
	// Prefix is prepended to every key ("" or ending in "/"), so several
	// installations can share a bucket.
	Prefix string
	// Endpoint is the base URL of an S3-compatible server, e.g.
	// "http://127.0.0.1:7070"; empty means AWS S3 itself.
	Endpoint string
	// PathStyle addresses buckets as Endpoint/bucket/key instead of
	// bucket.Endpoint/key; S3-compatible servers usually need it.
	PathStyle bool
	// Region defaults to AWS_REGION or "us-east-1".
	Region string
	// AccessKeyID and SecretAccessKey are static credentials; when empty
	// the SDK's default chain (environment, shared files, instance role)
	// applies.
	AccessKeyID     string
	SecretAccessKey string
	// PartSize is the multipart part size, at least MinPartSize (the
	// default). Objects of at least PartSize bytes are uploaded in parts.
	PartSize int64
	// Concurrency is the number of parts uploaded at once (and of part
	// buffers held in memory); default 4.
	Concurrency int
	// TempDir holds copies of unseekable or unsized Put content while it
	// is hashed; "" means os.TempDir().
	TempDir string
	// HTTPClient, when set, carries the SDK's requests.
	HTTPClient *http.Client
}

// Store is an artifact.Store on one bucket.
type Store struct {
	client      *awss3.Client
	presign     *awss3.PresignClient
	bucket      string
	prefix      string
	partSize    int64
	concurrency int
	tmpDir      string
}

var _ artifact.Store = (*Store)(nil)

// New builds the SDK client from cfg and returns the store. It does not
// contact the server.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 artifact store: no bucket configured")
	}
	var loads []func(*config.LoadOptions) error
	region := cfg.Region
	if region == "" && os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		region = "us-east-1"
	}
	if region != "" {
		loads = append(loads, config.WithRegion(region))
	}
	if cfg.AccessKeyID != "" || cfg.SecretAccessKey != "" {
		loads = append(loads, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	if cfg.HTTPClient != nil {
		loads = append(loads, config.WithHTTPClient(cfg.HTTPClient))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("s3 artifact store: load AWS config: %w", err)
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Multipart objects have a checksum of part checksums, which the
		// SDK cannot check and warns about on every Get; the store checks
		// the whole-object SHA-256 itself.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	s, err := NewFromClient(client, cfg.Bucket, cfg.Prefix, cfg.PartSize)
	if err != nil {
		return nil, err
	}
	if cfg.Concurrency > 0 {
		s.concurrency = cfg.Concurrency
	}
	s.tmpDir = cfg.TempDir
	return s, nil
}

// NewFromClient returns a store using an existing SDK client. partSize 0
// means MinPartSize.
func NewFromClient(client *awss3.Client, bucket, prefix string, partSize int64) (*Store, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("s3 artifact store: prefix %q must end in /", prefix)
	}
	if _, err := artifact.CleanPrefix(prefix); err != nil {
		return nil, fmt.Errorf("s3 artifact store: %w", err)
	}
	if partSize == 0 {
		partSize = MinPartSize
	}
	if partSize < MinPartSize {
		return nil, fmt.Errorf("s3 artifact store: part size %d below %d", partSize, MinPartSize)
	}
	return &Store{
		client:      client,
		presign:     awss3.NewPresignClient(client),
		bucket:      bucket,
		prefix:      prefix,
		partSize:    partSize,
		concurrency: 4,
	}, nil
}

// Client returns the SDK client (for tools and tests).
func (s *Store) Client() *awss3.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// ObjectKey returns the S3 key under which key is stored.
func (s *Store) ObjectKey(key string) string { return s.prefix + key }

// Put implements artifact.Store. The SHA-256 must be known before the
// upload starts (it travels in headers), so Put reads the content twice:
// a seekable reader (an *os.File, a bytes.Reader) with a known size is
// hashed, rewound and uploaded; anything else is first copied to a
// temporary file (or memory, below the part size) while being hashed.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (artifact.Info, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return artifact.Info{}, fmt.Errorf("put: %w", err)
	}
	body, size, sum, cleanup, err := s.stage(r, size)
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer cleanup()
	if size < s.partSize {
		err = s.putSingle(ctx, key, body, size, sum)
	} else {
		err = s.putMultipart(ctx, key, body, size, sum)
	}
	if err != nil {
		return artifact.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	// ModTime is the client's clock; Stat reports the server's.
	return artifact.Info{Key: key, Size: size, SHA256: hex.EncodeToString(sum), ModTime: time.Now()}, nil
}

// stage returns a rewindable body of exactly size bytes and its SHA-256.
func (s *Store) stage(r io.Reader, size int64) (io.ReadSeeker, int64, []byte, func(), error) {
	nop := func() {}
	if rs, ok := r.(io.ReadSeeker); ok && size >= 0 {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, 0, nil, nop, fmt.Errorf("seek: %w", err)
		}
		h := sha256.New()
		n, err := io.Copy(h, io.LimitReader(rs, size+1))
		if err != nil {
			return nil, 0, nil, nop, fmt.Errorf("read: %w", err)
		}
		if n != size {
			return nil, 0, nil, nop, fmt.Errorf("read %d bytes, size says %d", n, size)
		}
		if _, err := rs.Seek(start, io.SeekStart); err != nil {
			return nil, 0, nil, nop, fmt.Errorf("rewind: %w", err)
		}
		return io.NewSectionReader(readerAtSeeker{rs, start}, 0, size), size, h.Sum(nil), nop, nil
	}
	h := sha256.New()
	if size >= 0 && size < s.partSize {
		var buf bytes.Buffer
		n, err := io.Copy(io.MultiWriter(&buf, h), io.LimitReader(r, size+1))
		if err != nil {
			return nil, 0, nil, nop, fmt.Errorf("read: %w", err)
		}
		if n != size {
			return nil, 0, nil, nop, fmt.Errorf("read %d bytes, size says %d", n, size)
		}
		return bytes.NewReader(buf.Bytes()), n, h.Sum(nil), nop, nil
	}
	f, err := os.CreateTemp(s.tmpDir, "runnel-artifact-*")
	if err != nil {
		return nil, 0, nil, nop, fmt.Errorf("spool: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	var src io.Reader = r
	if size >= 0 {
		src = io.LimitReader(r, size+1)
	}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		cleanup()
		return nil, 0, nil, nop, fmt.Errorf("spool: %w", err)
	}
	if size >= 0 && n != size {
		cleanup()
		return nil, 0, nil, nop, fmt.Errorf("read %d bytes, size says %d", n, size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, 0, nil, nop, fmt.Errorf("spool: %w", err)
	}
	return f, n, h.Sum(nil), cleanup, nil
}

// readerAtSeeker gives a ReadSeeker the ReaderAt a SectionReader needs;
// SectionReader's reads are sequential here, so Seek+Read is enough.
type readerAtSeeker struct {
	rs    io.ReadSeeker
	start int64
}

func (r readerAtSeeker) ReadAt(p []byte, off int64) (int, error) {
	if _, err := r.rs.Seek(r.start+off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(r.rs, p)
}

func (s *Store) putSingle(ctx context.Context, key string, body io.ReadSeeker, size int64, sum []byte) error {
	_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:            &s.bucket,
		Key:               aws.String(s.prefix + key),
		Body:              body,
		ContentLength:     aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum)),
		Metadata:          map[string]string{metaSHA256: hex.EncodeToString(sum)},
	})
	if err != nil {
		return fmt.Errorf("PutObject: %w", err)
	}
	return nil
}

func (s *Store) putMultipart(ctx context.Context, key string, body io.Reader, size int64, sum []byte) (err error) {
	objKey := aws.String(s.prefix + key)
	up, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               objKey,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		Metadata:          map[string]string{metaSHA256: hex.EncodeToString(sum)},
	})
	if err != nil {
		return fmt.Errorf("CreateMultipartUpload: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: objKey, UploadId: up.UploadId,
		}); aerr != nil {
			err = errors.Join(err, fmt.Errorf("AbortMultipartUpload: %w", aerr))
		}
	}()

	// This goroutine reads parts in order into a few buffers; uploads run
	// concurrently, at most s.concurrency at a time, and give their buffer
	// back when done. The first failure cancels the rest.
	uctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	nparts := int((size + s.partSize - 1) / s.partSize)
	parts := make([]types.CompletedPart, nparts)
	free := make(chan []byte, s.concurrency)
	for range s.concurrency {
		free <- nil // allocated on first use: small objects need fewer
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	// The content is hashed again as it goes out: a file that changed
	// since the first pass must not be completed under the old checksum.
	whole := sha256.New()
	for i := range nparts {
		var buf []byte
		select {
		case buf = <-free:
		case <-uctx.Done():
			wg.Wait()
			return context.Cause(uctx)
		}
		n := min(size-int64(i)*s.partSize, s.partSize)
		if buf == nil {
			buf = make([]byte, s.partSize)
		}
		part := buf[:n]
		if _, err := io.ReadFull(body, part); err != nil {
			cancel(fmt.Errorf("read part %d: %w", i+1, err))
			break
		}
		whole.Write(part)
		ps := sha256.Sum256(part)
		psum := base64.StdEncoding.EncodeToString(ps[:])
		num := int32(i + 1)
		wg.Go(func() {
			defer func() { free <- buf }()
			out, err := s.client.UploadPart(uctx, &awss3.UploadPartInput{
				Bucket:            &s.bucket,
				Key:               objKey,
				UploadId:          up.UploadId,
				PartNumber:        aws.Int32(num),
				Body:              bytes.NewReader(part),
				ContentLength:     aws.Int64(n),
				ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
				ChecksumSHA256:    aws.String(psum),
			})
			if err != nil {
				cancel(fmt.Errorf("UploadPart %d: %w", num, err))
				return
			}
			parts[num-1] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumSHA256: aws.String(psum)}
		})
	}
	wg.Wait()
	if err := context.Cause(uctx); err != nil {
		return err
	}
	if !bytes.Equal(whole.Sum(nil), sum) {
		return fmt.Errorf("%w: content changed during upload", artifact.ErrChecksum)
	}
	if _, err := s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             objKey,
		UploadId:        up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		return fmt.Errorf("CompleteMultipartUpload: %w", err)
	}
	return nil
}

// Get implements artifact.Store. An object without a valid sha256
// metadata field (written behind the store's back) is refused with
// ErrChecksum: its bytes cannot be verified.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, artifact.Info, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return nil, artifact.Info{}, fmt.Errorf("get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{
		Bucket:       &s.bucket,
		Key:          aws.String(s.prefix + key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return nil, artifact.Info{}, fmt.Errorf("get %s: %w", key, classify(err))
	}
	info, err := infoOf(key, out.Metadata, out.ContentLength, out.LastModified)
	if err != nil {
		out.Body.Close()
		return nil, artifact.Info{}, fmt.Errorf("get %s: %w", key, err)
	}
	return artifact.VerifyReader(out.Body, key, info.SHA256, info.Size), info, nil
}

func infoOf(key string, md map[string]string, size *int64, mod *time.Time) (artifact.Info, error) {
	sum := md[metaSHA256]
	if !artifact.ValidSHA256(sum) {
		return artifact.Info{}, fmt.Errorf("%w: object has no valid %s metadata", artifact.ErrChecksum, metaSHA256)
	}
	info := artifact.Info{Key: key, SHA256: sum, Size: aws.ToInt64(size)}
	if mod != nil {
		info.ModTime = *mod
	}
	return info, nil
}

// Stat implements artifact.Store.
func (s *Store) Stat(ctx context.Context, key string) (artifact.Info, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return artifact.Info{}, fmt.Errorf("stat: %w", err)
	}
	info, err := s.head(ctx, key)
	if err != nil {
		return artifact.Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return info, nil
}

func (s *Store) head(ctx context.Context, key string) (artifact.Info, error) {
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{
		Bucket: &s.bucket,
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return artifact.Info{}, classify(err)
	}
	return infoOf(key, out.Metadata, out.ContentLength, out.LastModified)
}

// List implements artifact.Store. S3 listings carry no user metadata, so
// List costs one HeadObject per object on top of the listing.
func (s *Store) List(ctx context.Context, prefix string) ([]artifact.Info, error) {
	if _, err := artifact.CleanPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []artifact.Info
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: &s.bucket,
		Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, classify(err))
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if _, err := artifact.CleanKey(key); err != nil {
				continue // not written by a store
			}
			info, err := s.head(ctx, key)
			if errors.Is(err, artifact.ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("list %q: %s: %w", prefix, key, err)
			}
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements artifact.Store. S3's DeleteObject succeeds for missing
// keys, so Delete asks HeadObject first to report ErrNotFound.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := artifact.CleanKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if _, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}); err != nil {
		return fmt.Errorf("delete %s: %w", key, classify(err))
	}
	if _, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}); err != nil {
		return fmt.Errorf("delete %s: %w", key, classify(err))
	}
	return nil
}

// Presign returns a URL that GETs key's content without credentials until
// ttl has passed. The URL carries no verification: consumers should check
// the SHA-256 from Stat (artifact.Fetcher does).
func (s *Store) Presign(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return "", fmt.Errorf("presign: %w", err)
	}
	req, err := s.presign.PresignGetObject(ctx, &awss3.GetObjectInput{
		Bucket: &s.bucket,
		Key:    aws.String(s.prefix + key),
	}, awss3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign %s: %w", key, err)
	}
	return req.URL, nil
}

// PresignPut returns a URL and the headers with which a PUT stores exactly
// size bytes whose SHA-256 is sum (lowercase hex) under key, without
// credentials, until ttl has passed. The server checks the content against
// the signed checksum (BadDigest otherwise) and records sum as the store
// does, so Get and Stat work on the object as on one Put made. One PUT
// takes at most 5 GiB.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, sum string, ttl time.Duration) (string, http.Header, error) {
	if _, err := artifact.CleanKey(key); err != nil {
		return "", nil, fmt.Errorf("presign put: %w", err)
	}
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != sha256.Size {
		return "", nil, fmt.Errorf("presign put %s: %w: %q is not a hex sha256", key, artifact.ErrChecksum, sum)
	}
	req, err := s.presign.PresignPutObject(ctx, &awss3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            aws.String(s.prefix + key),
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(raw)),
		Metadata:       map[string]string{metaSHA256: sum},
	}, awss3.WithPresignExpires(ttl))
	if err != nil {
		return "", nil, fmt.Errorf("presign put %s: %w", key, err)
	}
	h := http.Header{}
	for k, vs := range req.SignedHeader {
		if strings.EqualFold(k, "Host") {
			continue // the URL carries it
		}
		h[k] = vs
	}
	return req.URL, h, nil
}

// classify adds artifact.ErrNotFound to S3's "no such key" answers.
func classify(err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var api smithy.APIError
	if errors.As(err, &nsk) || errors.As(err, &nf) ||
		errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") {
		return fmt.Errorf("%w: %w", artifact.ErrNotFound, err)
	}
	return err
}
