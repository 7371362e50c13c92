//go:build cgo && libsqlite3

package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// MaxNameLen bounds profile names (and client order IDs).
const MaxNameLen = 128

func validName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, what, MaxNameLen)
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("%w: %s %q contains a space or control character", ErrInvalid, what, s)
		}
	}
	return nil
}

// PutProfile stores doc as the next revision of the named profile and
// returns it. Revisions are immutable and numbered 1, 2, ... per name.
//
// If doc and contentType equal the latest revision's, nothing is written
// and that revision is returned with created == false: re-uploading the
// same document (a retried PUT, a deploy script run twice) does not mint
// revisions that differ only by number, and orders keep pointing at the
// revision they were rendered from. The caller validates doc first; the
// store only keeps bytes.
func (s *Store) PutProfile(ctx context.Context, name, contentType string, doc []byte) (p Profile, created bool, err error) {
	if err := validName("profile name", name); err != nil {
		return Profile{}, false, err
	}
	if contentType == "" {
		return Profile{}, false, fmt.Errorf("%w: empty content type", ErrInvalid)
	}
	sum := sha256.Sum256(doc)
	committing := false // an earlier attempt reached its commit
	err = s.tx(ctx, writeTx, func(tx *sql.Tx) error {
		latest, err := getProfile(ctx, tx, name, 0)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case latest.ContentType == contentType && bytes.Equal(latest.Document, doc):
			// On a rerun after a commit that reported an error but
			// went through, this is our own revision.
			p, created = latest, committing
			return nil
		}
		p = Profile{
			Name: name, Revision: latest.Revision + 1, ContentType: contentType,
			Document: nonNil(doc), SHA256: sum, CreatedAt: s.now().UTC(),
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO profiles (name, revision, content_type, document, sha256, created_at)
VALUES (?, ?, ?, ?, ?, ?)`, p.Name, p.Revision, p.ContentType, p.Document, p.SHA256[:], p.CreatedAt.UnixNano())
		if err != nil {
			return fmt.Errorf("insert profile %s revision %d: %w", name, p.Revision, err)
		}
		created = true
		committing = true
		return nil
	})
	if err != nil {
		return Profile{}, false, err
	}
	return p, created, nil
}

// GetProfile returns revision rev of the named profile; rev 0 means the
// latest. ErrNotFound if the name or that revision does not exist.
func (s *Store) GetProfile(ctx context.Context, name string, rev int64) (Profile, error) {
	if rev < 0 {
		return Profile{}, fmt.Errorf("%w: profile revision %d", ErrInvalid, rev)
	}
	var p Profile
	err := s.one(ctx, readTx, func(q querier) error {
		var err error
		p, err = getProfile(ctx, q, name, rev)
		return err
	})
	return p, err
}

// LatestProfileRevision returns the number and SHA-256 of the named
// profile's latest revision, without its document: enough for a caller
// that keeps revisions it read before (they never change).
func (s *Store) LatestProfileRevision(ctx context.Context, name string) (rev int64, sum [32]byte, err error) {
	err = s.one(ctx, readTx, func(q querier) error {
		var err error
		rev, sum, err = latestRevision(ctx, q, name)
		return err
	})
	return rev, sum, err
}

func latestRevision(ctx context.Context, q querier, name string) (rev int64, sum [32]byte, err error) {
	var b []byte
	err = q.QueryRowContext(ctx, `SELECT revision, sha256 FROM profiles WHERE name = ? ORDER BY revision DESC LIMIT 1`, name).Scan(&rev, &b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, sum, fmt.Errorf("profile %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return 0, sum, fmt.Errorf("read profile %q: %w", name, err)
	}
	copy(sum[:], b)
	return rev, sum, nil
}

func getProfile(ctx context.Context, tx querier, name string, rev int64) (Profile, error) {
	q := `SELECT name, revision, content_type, document, sha256, created_at FROM profiles WHERE name = ? AND revision = ?`
	args := []any{name, rev}
	if rev == 0 {
		q = `SELECT name, revision, content_type, document, sha256, created_at FROM profiles WHERE name = ? ORDER BY revision DESC LIMIT 1`
		args = args[:1]
	}
	var p Profile
	var sum []byte
	var created int64
	err := tx.QueryRowContext(ctx, q, args...).Scan(&p.Name, &p.Revision, &p.ContentType, &p.Document, &sum, &created)
	if errors.Is(err, sql.ErrNoRows) {
		if rev == 0 {
			return Profile{}, fmt.Errorf("profile %q: %w", name, ErrNotFound)
		}
		return Profile{}, fmt.Errorf("profile %q revision %d: %w", name, rev, ErrNotFound)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("read profile %q: %w", name, err)
	}
	copy(p.SHA256[:], sum)
	p.CreatedAt = fromNanos(created)
	p.Document = nonNil(p.Document)
	return p, nil
}

// ListProfiles returns every profile by its latest revision, sorted by
// name.
func (s *Store) ListProfiles(ctx context.Context) ([]ProfileSummary, error) {
	var out []ProfileSummary
	err := s.tx(ctx, readTx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT p.name, p.revision, p.content_type, p.sha256, p.created_at
FROM profiles p
JOIN (SELECT name, MAX(revision) AS revision FROM profiles GROUP BY name) l
  ON p.name = l.name AND p.revision = l.revision
ORDER BY p.name`)
		if err != nil {
			return fmt.Errorf("list profiles: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var ps ProfileSummary
			var sum []byte
			var created int64
			if err := rows.Scan(&ps.Name, &ps.LatestRevision, &ps.ContentType, &sum, &created); err != nil {
				return fmt.Errorf("list profiles: %w", err)
			}
			copy(ps.SHA256[:], sum)
			ps.CreatedAt = fromNanos(created)
			out = append(out, ps)
		}
		return rows.Err()
	})
	return out, err
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func nullNanos(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromNanos(v.Int64)
}
