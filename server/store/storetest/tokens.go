package storetest

import (
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

func testTokens(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "tokenholder", store.RolePublisher)
	other := mkUser(t, s, "otherholder", store.RolePublisher)
	t1 := &store.Token{Token: "T01", PublicKey: "pk1", UserAgent: "rsconnect/1.3.0", Address: "127.0.0.1", CreatedAt: T0}
	t2 := &store.Token{Token: "T02", PublicKey: "pk2", CreatedAt: T0.Add(time.Hour)}
	must(t, s.CreateToken(c, t1))
	must(t, s.CreateToken(c, t2))
	wantErr(t, s.CreateToken(c, &store.Token{Token: "T01", PublicKey: "x"}), store.ErrConflict, "duplicate token id")

	got, err := s.TokenByToken(c, "T01")
	must(t, err)
	eq(t, "token id", got.ID, t1.ID)
	eq(t, "token key", got.PublicKey, "pk1")
	eq(t, "token agent", got.UserAgent, "rsconnect/1.3.0")
	eq(t, "token address", got.Address, "127.0.0.1")
	eq(t, "token created", got.CreatedAt, us(T0))
	eq(t, "token unclaimed", got.UserID, int64(0))
	if !got.ClaimedAt.IsZero() {
		t.Fatalf("ClaimedAt = %v, want zero", got.ClaimedAt)
	}
	_, err = s.TokenByToken(c, "nope")
	wantErr(t, err, store.ErrNotFound, "TokenByToken(missing)")
	n, err := s.CountUnclaimedTokens(c, "")
	must(t, err)
	eq(t, "unclaimed", n, 2)
	n, err = s.CountUnclaimedTokens(c, "127.0.0.1")
	must(t, err)
	eq(t, "unclaimed from 127.0.0.1", n, 1)

	must(t, s.ClaimToken(c, t1.ID, u.ID, T0.Add(time.Minute)))
	wantErr(t, s.ClaimToken(c, t1.ID, other.ID, T0), store.ErrConflict, "second claim")
	wantErr(t, s.ClaimToken(c, t1.ID+t2.ID+99, u.ID, T0), store.ErrNotFound, "claim of a missing token")
	got, err = s.Token(c, t1.ID)
	must(t, err)
	eq(t, "claimed by", got.UserID, u.ID)
	eq(t, "claimed at", got.ClaimedAt, us(T0.Add(time.Minute)))
	must(t, s.TouchToken(c, t1.ID, T0.Add(2*time.Minute)))
	got, err = s.Token(c, t1.ID)
	must(t, err)
	eq(t, "last used", got.LastUsedAt, us(T0.Add(2*time.Minute)))

	list, err := s.ListTokens(c, u.ID)
	must(t, err)
	if len(list) != 1 || list[0].ID != t1.ID {
		t.Fatalf("ListTokens = %+v, want t1 only (t2 is unclaimed)", list)
	}
	list, err = s.ListTokens(c, other.ID)
	must(t, err)
	eq(t, "other's tokens", len(list), 0)

	// Only unclaimed tokens older than the cut are removed.
	gone, err := s.DeleteUnclaimedTokens(c, T0.Add(2*time.Hour))
	must(t, err)
	eq(t, "unclaimed deleted", gone, int64(1))
	_, err = s.Token(c, t2.ID)
	wantErr(t, err, store.ErrNotFound, "expired unclaimed token")
	_, err = s.Token(c, t1.ID)
	must(t, err)

	// A deleted user's tokens go with them.
	t3 := &store.Token{Token: "T03", PublicKey: "pk3"}
	must(t, s.CreateToken(c, t3))
	must(t, s.ClaimToken(c, t3.ID, other.ID, T0))
	must(t, s.DeleteUser(c, other.ID))
	_, err = s.Token(c, t3.ID)
	wantErr(t, err, store.ErrNotFound, "token of a deleted user")

	must(t, s.DeleteToken(c, t1.ID))
	wantErr(t, s.DeleteToken(c, t1.ID), store.ErrNotFound, "DeleteToken twice")
	wantErr(t, s.TouchToken(c, t1.ID, T0), store.ErrNotFound, "TouchToken(deleted)")

	// Signatures: a second record is a replay until it expires.
	must(t, s.RecordSignature(c, "sig1", T0.Add(time.Minute)))
	wantErr(t, s.RecordSignature(c, "sig1", T0.Add(time.Minute)), store.ErrConflict, "replayed signature")
	must(t, s.RecordSignature(c, "sig2", T0.Add(time.Hour)))
	gone, err = s.DeleteExpiredSignatures(c, T0.Add(time.Minute))
	must(t, err)
	eq(t, "expired signatures", gone, int64(1))
	must(t, s.RecordSignature(c, "sig1", T0.Add(2*time.Minute)))
	wantErr(t, s.RecordSignature(c, "sig2", T0), store.ErrConflict, "unexpired signature")
}
