package web

import (
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// Token authentication, as Posit Connect does it for R rsconnect's
// connectUser() and the RStudio IDE's publish wizard:
//
//  1. The client makes an RSA key pair and a token id, and sends the id
//     and the public key (base64 DER) to POST /__api__/tokens, without
//     credentials. The answer's token_claim_url is a page of the dashboard.
//  2. The user opens that page in a browser, logged in, and confirms: the
//     token is now theirs (ClaimToken).
//  3. Every later request carries X-Auth-Token (the id), Date (RFC 1123,
//     GMT), X-Content-Checksum (base64 of the body's MD5, of "" without a
//     body) and X-Auth-Signature: base64 of the RSA PKCS #1 v1.5 signature,
//     with SHA-1, of "METHOD\nPATH\nDATE\nCHECKSUM", PATH being the request's
//     path as sent, without the query (rsconnect's signatureHeaders).
//
// Refused, with 401: a signature that does not verify with the token's key,
// a Date more than TokenClockSkew from the server's clock, a signature seen
// before (a replay; the signatures are kept in the database while their Date
// is accepted, so every node of a cluster refuses them), a body that does
// not match its checksum. An unclaimed token authenticates nothing: its
// requests answer 500 "token is unclaimed", which is what R rsconnect before
// 1.5 waits on while the user claims it (Connect before 2024.05 answered so;
// later rsconnect waits on 401 or 500).

// Token authentication limits.
const (
	// TokenClockSkew is how far a signed request's Date may be from the
	// server's clock, either way.
	TokenClockSkew = 5 * time.Minute
	// UnclaimedTokenLifetime is how long a token may wait for its claim;
	// older unclaimed tokens are removed.
	UnclaimedTokenLifetime = time.Hour
	// MaxUnclaimedTokens bounds the tokens waiting for a claim, and
	// MaxUnclaimedTokensPerAddress those created from one address:
	// creating one needs no credentials.
	MaxUnclaimedTokens           = 1000
	MaxUnclaimedTokensPerAddress = 20
)

// Headers of a signed request.
const (
	headerAuthToken     = "X-Auth-Token"
	headerAuthSignature = "X-Auth-Signature"
	headerChecksum      = "X-Content-Checksum"
	// anonymousToken is the X-Auth-Token rsconnect sends without credentials.
	anonymousToken = "anonymous-access"
)

// emptyChecksum is base64(md5("")), the checksum of a request without a body.
var emptyChecksum = func() string { s := md5.Sum(nil); return base64.StdEncoding.EncodeToString(s[:]) }()

// signedRequest tells whether r is signed with a token: X-Auth-Token
// names one and X-Auth-Signature is there. A token without a signature (a
// proxy's, rsconnect's "anonymous-access") is not dais's to check.
func signedRequest(r *http.Request) bool {
	tok := r.Header.Get(headerAuthToken)
	return tok != "" && tok != anonymousToken && r.Header.Get(headerAuthSignature) != ""
}

// authError is a refused credential: status and the message the client reads.
type authError struct {
	status int
	msg    string
}

func (e *authError) Error() string { return e.msg }

func unauthorized(format string, args ...any) error {
	return &authError{http.StatusUnauthorized, fmt.Sprintf(format, args...)}
}

// ParseTokenKey reads a client's public key: base64 of DER, either a
// SubjectPublicKeyInfo (what rsconnect sends) or a PKCS #1 RSA key. Only
// RSA keys of 2048 bits or more are taken.
func ParseTokenKey(b64 string) (*rsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return nil, fmt.Errorf("public_key is not base64: %w", err)
	}
	var pub *rsa.PublicKey
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public_key is a %T; token signing needs an RSA key", k)
		}
		pub = rk
	} else if rk, err2 := x509.ParsePKCS1PublicKey(der); err2 == nil {
		pub = rk
	} else {
		return nil, fmt.Errorf("public_key is not a DER public key: %w", err)
	}
	if pub.N.BitLen() < 2048 {
		return nil, fmt.Errorf("public_key has %d bits; at least 2048 are needed", pub.N.BitLen())
	}
	return pub, nil
}

// canonicalRequest is what the client signed.
func canonicalRequest(method, path, date, checksum string) string {
	return method + "\n" + path + "\n" + date + "\n" + checksum
}

// signedPath is the request's path as the client sent it, without the query.
func signedPath(r *http.Request) string {
	p := r.RequestURI
	if p == "" || p == "*" || strings.Contains(p, "://") {
		p = r.URL.RequestURI()
	}
	p, _, _ = strings.Cut(p, "?")
	return p
}

// userByToken checks a signed request and returns its user, and r with its
// body checked against the checksum the client signed. Failures are
// *authError (refuse with its status) or an internal error.
func (s *Server) userByToken(r *http.Request) (*store.User, *http.Request, error) {
	ctx := r.Context()
	id := r.Header.Get(headerAuthToken)
	sigB64 := r.Header.Get(headerAuthSignature)
	date := r.Header.Get("Date")
	if date == "" {
		return nil, r, unauthorized("a signed request needs a Date header (RFC 1123, GMT)")
	}
	at, err := http.ParseTime(date)
	if err != nil {
		return nil, r, unauthorized("malformed Date header %q: send it as RFC 1123 in GMT (Mon, 02 Jan 2006 15:04:05 GMT)", date)
	}
	now := time.Now()
	if d := now.Sub(at); d > TokenClockSkew || d < -TokenClockSkew {
		return nil, r, unauthorized("the request's Date is %s from the server's clock (at most %s is accepted): set the client's clock right, then try again", d.Round(time.Second).Abs(), TokenClockSkew)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		return nil, r, unauthorized("malformed X-Auth-Signature: it must be base64")
	}
	tok, err := s.store.TokenByToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, r, unauthorized("unknown token %s: register the account again (rsconnect::connectUser())", shortToken(id))
	}
	if err != nil {
		return nil, r, err
	}
	pub, err := ParseTokenKey(tok.PublicKey)
	if err != nil {
		return nil, r, fmt.Errorf("token %d: stored key: %w", tok.ID, err)
	}
	checksum := r.Header.Get(headerChecksum)
	if checksum == "" {
		checksum = emptyChecksum
	}
	digest := sha1.Sum([]byte(canonicalRequest(r.Method, signedPath(r), date, checksum)))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, digest[:], sig); err != nil {
		return nil, r, unauthorized("the X-Auth-Signature does not verify with token %s's key: sign METHOD, path, Date and X-Content-Checksum with the token's private key", shortToken(id))
	}
	sum := sha256.Sum256(sig)
	switch err := s.store.RecordSignature(ctx, hex.EncodeToString(sum[:]), at.Add(TokenClockSkew)); {
	case errors.Is(err, store.ErrConflict):
		return nil, r, unauthorized("replayed request: this signature was used already; sign every request anew")
	case err != nil:
		return nil, r, err
	}
	if tok.UserID == 0 {
		// 500, not 401: R rsconnect before 1.5 keeps waiting for the
		// claim only on 500 (see the comment at the top).
		return nil, r, &authError{http.StatusInternalServerError, "token " + shortToken(id) + " is unclaimed: open its claim URL in a browser while logged in to dais, and confirm"}
	}
	u, err := s.store.User(ctx, tok.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, r, unauthorized("unknown token %s: register the account again (rsconnect::connectUser())", shortToken(id))
	}
	if err != nil {
		return nil, r, err
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		if checksum != emptyChecksum {
			return nil, r, unauthorized("the X-Content-Checksum does not match the request's empty body")
		}
	} else {
		r2 := *r
		r2.Body = &checkedBody{body: r.Body, h: md5.New(), want: checksum}
		r = &r2
	}
	if now.Sub(tok.LastUsedAt) > keyTouchInterval {
		if err := s.store.TouchToken(ctx, tok.ID, now); err != nil {
			s.log.Warn("record token use", logKeyErr, err)
		}
	}
	return u, r, nil
}

// shortToken is the start of a token id, enough to tell tokens apart in
// a message without repeating the whole id.
func shortToken(id string) string {
	if len(id) > 9 {
		return id[:9] + "…"
	}
	return id
}

// ErrBodyChecksum is what reading a signed request's body returns at its
// end when the body does not match the X-Content-Checksum it was signed with.
var ErrBodyChecksum = errors.New("the request body does not match its X-Content-Checksum (base64 of its MD5)")

// checkedBody hashes a body as it is read and, at its end, turns io.EOF
// into ErrBodyChecksum when the hash is not the signed one.
type checkedBody struct {
	body io.ReadCloser
	h    hash.Hash
	want string
	bad  bool
}

func (b *checkedBody) Read(p []byte) (int, error) {
	if b.bad {
		return 0, ErrBodyChecksum
	}
	n, err := b.body.Read(p)
	b.h.Write(p[:n])
	if errors.Is(err, io.EOF) && base64.StdEncoding.EncodeToString(b.h.Sum(nil)) != b.want {
		b.bad = true
		return n, ErrBodyChecksum
	}
	return n, err
}

func (b *checkedBody) Close() error { return b.body.Close() }

// stripTokenHeaders removes a signed request's credentials before the
// request goes to content.
func stripTokenHeaders(r *http.Request) {
	if r.Header.Get(headerAuthSignature) == "" {
		return
	}
	for _, h := range []string{headerAuthToken, headerAuthSignature, headerChecksum} {
		r.Header.Del(h)
	}
}
