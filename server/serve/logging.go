package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/dais-dev/dais/server/config"
)

// logControl holds the service log's level and format, both changeable on
// HUP (Logging.ServiceLogLevel, Logging.ServiceLogFormat) for every logger
// derived from it, including those handed to components with With().
type logControl struct {
	level slog.LevelVar
	json  atomic.Bool
}

// newLogger returns the service logger writing to w, set from cfg.
func newLogger(w io.Writer, cfg config.Logging) (*slog.Logger, *logControl, error) {
	ctl := &logControl{}
	if err := ctl.apply(cfg); err != nil {
		return nil, nil, err
	}
	opts := &slog.HandlerOptions{Level: &ctl.level}
	h := &switchHandler{ctl: ctl, text: slog.NewTextHandler(w, opts), json: slog.NewJSONHandler(w, opts)}
	return slog.New(h), ctl, nil
}

// apply sets level and format from cfg.
func (c *logControl) apply(cfg config.Logging) error {
	lvl, err := parseLevel(cfg.ServiceLogLevel)
	if err != nil {
		return err
	}
	var asJSON bool
	switch strings.ToUpper(cfg.ServiceLogFormat) {
	case "", "TEXT":
	case "JSON":
		asJSON = true
	default:
		return fmt.Errorf("Logging.ServiceLogFormat %q: use TEXT or JSON", cfg.ServiceLogFormat)
	}
	c.level.Set(lvl)
	c.json.Store(asJSON)
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "DEBUG", "TRACE":
		return slog.LevelDebug, nil
	case "", "INFO":
		return slog.LevelInfo, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("Logging.ServiceLogLevel %q: use DEBUG, INFO, WARN or ERROR", s)
}

// switchHandler sends each record to the text or the JSON handler, as the
// control says at that moment.
type switchHandler struct {
	ctl        *logControl
	text, json slog.Handler
}

func (h *switchHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.ctl.level.Level()
}

func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.ctl.json.Load() {
		return h.json.Handle(ctx, r)
	}
	return h.text.Handle(ctx, r)
}

func (h *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &switchHandler{ctl: h.ctl, text: h.text.WithAttrs(as), json: h.json.WithAttrs(as)}
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	return &switchHandler{ctl: h.ctl, text: h.text.WithGroup(name), json: h.json.WithGroup(name)}
}
