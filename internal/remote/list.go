package remote

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob"
)

// Object is one object under the Store's prefix.
type Object struct {
	Key     string    // relative to the prefix
	Size    int64     // bytes
	ETag    string    // the server's ETag, quoted as sent; "" where the driver gives none
	ModTime time.Time // last modified, as the server reports it
}

// Want returns what Copy should expect of o.
func (o Object) Want() Want { return Want{Size: o.Size, ETag: o.ETag, ModTime: o.ModTime} }

// listPageSize is the keys asked for per list request (a variable for the
// tests).
var listPageSize = 1000

// List returns every object under the prefix, in key order, one request
// per 1000 keys, each retried on a transient error. It returns ErrNotFound
// when the prefix holds nothing (a restore from it would restore nothing;
// a backup to a new prefix expects it).
func (s *Store) List(ctx context.Context) ([]Object, error) {
	var out []Object
	b := newBudget(s.opts.RetryBudget)
	token := blob.FirstPageToken
	for {
		type page struct {
			objs []*blob.ListObject
			next []byte
		}
		p, err := retry(ctx, s, b, func(ctx context.Context) (page, error) {
			objs, next, err := s.bucket.ListPage(ctx, token, listPageSize, nil)
			return page{objs, next}, err
		})
		if err != nil {
			return nil, s.fail("list", s.url, err, nil)
		}
		for _, o := range p.objs {
			if o.IsDir {
				continue
			}
			obj := Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime}
			var so types.Object
			if o.As(&so) {
				obj.ETag = aws.ToString(so.ETag)
			}
			out = append(out, obj)
		}
		if len(p.next) == 0 {
			break
		}
		token = p.next
	}
	if len(out) == 0 {
		return nil, newError(s.red, "list", s.url, ErrNotFound, nil)
	}
	return out, nil
}

// Stat returns the object at key (HEAD). Errors: ErrNotFound,
// ErrAccessDenied, or a transient error that outlived the retries.
func (s *Store) Stat(ctx context.Context, key string) (Object, error) {
	a, err := retry(ctx, s, newBudget(s.opts.RetryBudget), func(ctx context.Context) (*blob.Attributes, error) {
		return s.bucket.Attributes(ctx, key)
	})
	if err != nil {
		return Object{}, s.fail("stat", s.base+key, err, nil)
	}
	return Object{Key: key, Size: a.Size, ETag: a.ETag, ModTime: a.ModTime}, nil
}
