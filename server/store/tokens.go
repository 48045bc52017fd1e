package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Token is a client token of Connect's token authentication, which R
// rsconnect's connectUser() and the RStudio IDE's publish wizard use: the
// client makes an RSA key pair, sends the public key with a token id it
// chose, and signs every later request with the private key. The token
// authenticates nothing until a logged-in user claims it (UserID set).
type Token struct {
	ID        int64
	Token     string // the client's id of the token ("T" and 32 hex digits for rsconnect); unique
	PublicKey string // base64 of the DER public key, as the client sent it
	UserID    int64  // 0 until claimed
	UserAgent string // of the request that created it, shown on the claim page
	Address   string // the client's address when it created it, likewise
	CreatedAt time.Time
	ClaimedAt time.Time // zero until claimed
	// LastUsedAt is the last signed request's time (zero: never).
	LastUsedAt time.Time
}

// TokenStore is the part of Store that keeps tokens and the signatures
// seen, for the refusal of replayed requests.
type TokenStore interface {
	// CreateToken returns ErrConflict when the token id is taken.
	CreateToken(ctx context.Context, t *Token) error
	// TokenByToken finds a token by the client's id.
	TokenByToken(ctx context.Context, token string) (*Token, error)
	Token(ctx context.Context, id int64) (*Token, error)
	// ListTokens returns the tokens claimed by the user, by id.
	ListTokens(ctx context.Context, userID int64) ([]Token, error)
	// CountUnclaimedTokens counts tokens no one has claimed, created from
	// address ("": from anywhere).
	CountUnclaimedTokens(ctx context.Context, address string) (int, error)
	// ClaimToken gives an unclaimed token to the user; ErrConflict when
	// it is claimed already (by anyone), ErrNotFound when it is missing.
	ClaimToken(ctx context.Context, id, userID int64, at time.Time) error
	TouchToken(ctx context.Context, id int64, at time.Time) error
	DeleteToken(ctx context.Context, id int64) error
	// DeleteUnclaimedTokens removes the tokens created before before
	// that no one claimed, and returns how many.
	DeleteUnclaimedTokens(ctx context.Context, before time.Time) (int64, error)
	// RecordSignature remembers a signed request (by a hash of its
	// signature) until expires; ErrConflict when it is remembered already:
	// the request is a replay.
	RecordSignature(ctx context.Context, hash string, expires time.Time) error
	// DeleteExpiredSignatures forgets the signatures expired at now.
	DeleteExpiredSignatures(ctx context.Context, now time.Time) (int64, error)
}

const tokenCols = `id, token, public_key, user_id, user_agent, address, created_at, claimed_at, last_used_at`

func scanToken(r scanner) (*Token, error) {
	var t Token
	err := r.Scan(&t.ID, &t.Token, &t.PublicKey, nid{&t.UserID}, &t.UserAgent, &t.Address,
		ts{&t.CreatedAt}, ts{&t.ClaimedAt}, ts{&t.LastUsedAt})
	if err != nil {
		return nil, mapErr(err)
	}
	return &t, nil
}

func (s *sqlDB) CreateToken(ctx context.Context, t *Token) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now()
	}
	err := s.queryRow(ctx, `INSERT INTO tokens (token, public_key, user_id, user_agent, address, created_at, claimed_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		t.Token, t.PublicKey, idv(t.UserID), t.UserAgent, t.Address, tv(t.CreatedAt), tv(t.ClaimedAt), tv(t.LastUsedAt)).Scan(&t.ID)
	if err != nil {
		return fmt.Errorf("create token: %w", mapErr(err))
	}
	return nil
}

func (s *sqlDB) TokenByToken(ctx context.Context, token string) (*Token, error) {
	t, err := scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE token = ?`, token))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

func (s *sqlDB) Token(ctx context.Context, id int64) (*Token, error) {
	t, err := scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("token %d: %w", id, err)
	}
	return t, nil
}

func (s *sqlDB) ListTokens(ctx context.Context, userID int64) ([]Token, error) {
	rows, err := s.query(ctx, `SELECT `+tokenCols+` FROM tokens WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", mapErr(err))
	}
	return collect(rows, scanToken)
}

func (s *sqlDB) CountUnclaimedTokens(ctx context.Context, address string) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM tokens WHERE user_id IS NULL AND (? = '' OR address = ?)`, address, address).Scan(&n); err != nil {
		return 0, fmt.Errorf("count unclaimed tokens: %w", mapErr(err))
	}
	return n, nil
}

func (s *sqlDB) ClaimToken(ctx context.Context, id, userID int64, at time.Time) error {
	err := affected(s.exec(ctx, `UPDATE tokens SET user_id = ?, claimed_at = ? WHERE id = ? AND user_id IS NULL`, userID, tv(at), id))
	if errors.Is(err, ErrNotFound) {
		// Missing, or claimed already: tell which.
		if _, err := s.Token(ctx, id); err != nil {
			return fmt.Errorf("claim token %d: %w", id, err)
		}
		return fmt.Errorf("claim token %d: %w: claimed already", id, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("claim token %d: %w", id, err)
	}
	return nil
}

func (s *sqlDB) TouchToken(ctx context.Context, id int64, at time.Time) error {
	if err := affected(s.exec(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, tv(at), id)); err != nil {
		return fmt.Errorf("touch token %d: %w", id, err)
	}
	return nil
}

func (s *sqlDB) DeleteToken(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM tokens WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete token %d: %w", id, err)
	}
	return nil
}

func (s *sqlDB) DeleteUnclaimedTokens(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM tokens WHERE user_id IS NULL AND created_at < ?`, before.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete unclaimed tokens: %w", err)
	}
	return res.RowsAffected()
}

func (s *sqlDB) RecordSignature(ctx context.Context, hash string, expires time.Time) error {
	if _, err := s.exec(ctx, `INSERT INTO token_signatures (hash, expires_at) VALUES (?, ?)`, hash, expires.UnixMicro()); err != nil {
		return fmt.Errorf("record signature: %w", err)
	}
	return nil
}

func (s *sqlDB) DeleteExpiredSignatures(ctx context.Context, at time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM token_signatures WHERE expires_at <= ?`, at.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete expired signatures: %w", err)
	}
	return res.RowsAffected()
}
