package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dais-dev/dais/server/diskspace"
	"io"
	"net/http"
	"strings"
)

// MaxJSONBody bounds a JSON request body. Bundles are uploaded raw, not as
// JSON, so a JSON document larger than this is a client mistake.
const MaxJSONBody = 4 << 20

// ErrorBody is the shape of every error answer under /__api__.
type ErrorBody struct {
	Error string `json:"error"`
	// Code repeats the HTTP status, so clients that only keep the body
	// still know what happened.
	Code int `json:"code"`
}

// WriteJSON answers with v as JSON and the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // answers are JSON, never HTML: keep <key> readable
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(ErrorBody{Error: "encode response: " + err.Error(), Code: status})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// WriteError answers {"error": msg, "code": status} with that status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, ErrorBody{Error: msg, Code: status})
}

// RequestError is a client mistake with the status that says so. DecodeJSON
// returns it; WriteRequestError answers it.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

// DecodeJSON reads r's body, a single JSON value, into v. Unknown fields are
// ignored (clients of several versions send extras). On failure it returns a
// *RequestError: 400 for malformed or empty JSON, 413 for a body over
// MaxJSONBody. Answer it with WriteRequestError.
func DecodeJSON(r *http.Request, v any) error {
	if r.Body == nil {
		return &RequestError{http.StatusBadRequest, "request body is empty: send a JSON object"}
	}
	body := &countingReader{r: io.LimitReader(r.Body, MaxJSONBody+1)}
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		if status, msg, ok := BodyError(err); ok {
			return &RequestError{status, msg}
		}
		switch {
		case body.n > MaxJSONBody:
			return &RequestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxJSONBody)}
		case errors.Is(err, io.EOF):
			return &RequestError{http.StatusBadRequest, "request body is empty: send a JSON object"}
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "the body"
			}
			return &RequestError{http.StatusBadRequest, fmt.Sprintf("malformed JSON: %s must be %s, not %s", field, jsonKind(te.Type.Kind().String()), te.Value)}
		}
		return &RequestError{http.StatusBadRequest, "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	// Trailing garbage after the value is malformed too.
	if dec.More() {
		return &RequestError{http.StatusBadRequest, "malformed JSON: more than one value in the body"}
	}
	// Read to the end, where a signed body is checked (tokenauth.go):
	// More stops at the first error without returning it.
	if _, err := io.Copy(io.Discard, body); err != nil {
		if status, msg, ok := BodyError(err); ok {
			return &RequestError{status, msg}
		}
		return &RequestError{http.StatusBadRequest, "reading the request body failed: " + err.Error()}
	}
	return nil
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "a number"
	case k == "string":
		return "a string"
	case k == "bool":
		return "true or false"
	case k == "slice", k == "array":
		return "an array"
	case k == "struct", k == "map":
		return "an object"
	}
	return k
}

// WriteRequestError answers err: a *RequestError with its status, anything
// else as 500 (its text is logged by the caller, not shown).
func WriteRequestError(w http.ResponseWriter, err error) {
	var re *RequestError
	if errors.As(err, &re) {
		WriteError(w, re.Status, re.Msg)
		return
	}
	var fe *diskspace.FullError
	if errors.As(err, &fe) {
		WriteError(w, fe.Status(), fe.Error())
		return
	}
	WriteError(w, http.StatusInternalServerError, "internal error")
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
