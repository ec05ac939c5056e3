package raft

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
)

// slogHCLog lets hashicorp/raft, which logs through hclog, write into rls's slog logger, so
// that one handler (text or JSON) formats every line the process prints. hashicorp ships an
// adapter only for the opposite direction (slog over hclog), hence this small one.
type slogHCLog struct {
	logger *slog.Logger
	name   string
	args   []any
}

func newHCLog(logger *slog.Logger, name string) hclog.Logger {
	return &slogHCLog{logger: logger.With("component", name), name: name}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *slogHCLog) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	h.logger.Log(context.Background(), slogLevel(level), msg, slogArgs(args)...)
}

// slogArgs renders the values hclog formats itself (hclog.Fmt, Hex, Octal, Binary, Quote),
// which slog would otherwise print as their raw Go value: hashicorp/raft's
// hclog.Fmt("%+v", servers) came out as servers="[%+v [{Suffrage:0 ...}]]". A list of
// Raft servers reads as "n1 at 127.0.0.1:7000 (Voter), ...". args is not modified.
func slogArgs(args []any) []any {
	var out []any
	for i, arg := range args {
		v, ok := hclogValue(arg)
		if !ok {
			continue
		}
		if out == nil {
			out = slices.Clone(args)
		}
		out[i] = v
	}
	if out == nil {
		return args
	}
	return out
}

func hclogValue(arg any) (any, bool) {
	switch v := arg.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return "", true
		}
		if len(v) == 2 {
			if servers, ok := v[1].([]hraft.Server); ok {
				return formatServers(servers), true
			}
		}
		format, ok := v[0].(string)
		if !ok {
			return fmt.Sprint(v...), true
		}
		return fmt.Sprintf(format, v[1:]...), true
	case hclog.Hex:
		return "0x" + strconv.FormatUint(uint64(v), 16), true
	case hclog.Octal:
		return "0" + strconv.FormatUint(uint64(v), 8), true
	case hclog.Binary:
		return "0b" + strconv.FormatUint(uint64(v), 2), true
	case hclog.Quote:
		return string(v), true // the slog handler quotes and escapes it as needed
	}
	return nil, false
}

// formatServers renders a Raft configuration's servers as "n1 at 127.0.0.1:7000 (Voter), ...",
// or "none" for an empty configuration (a node that has not joined a cluster yet).
func formatServers(servers []hraft.Server) string {
	if len(servers) == 0 {
		return "none"
	}
	parts := make([]string, len(servers))
	for i, s := range servers {
		parts[i] = fmt.Sprintf("%s at %s (%s)", s.ID, s.Address, s.Suffrage)
	}
	return strings.Join(parts, ", ")
}

func (h *slogHCLog) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *slogHCLog) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *slogHCLog) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *slogHCLog) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *slogHCLog) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *slogHCLog) enabled(l hclog.Level) bool {
	return h.logger.Enabled(context.Background(), slogLevel(l))
}

func (h *slogHCLog) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *slogHCLog) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *slogHCLog) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *slogHCLog) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *slogHCLog) IsError() bool { return h.enabled(hclog.Error) }

func (h *slogHCLog) ImpliedArgs() []any { return h.args }

func (h *slogHCLog) With(args ...any) hclog.Logger {
	return &slogHCLog{logger: h.logger.With(slogArgs(args)...), name: h.name, args: append(append([]any{}, h.args...), args...)}
}

func (h *slogHCLog) Name() string { return h.name }

func (h *slogHCLog) Named(name string) hclog.Logger {
	full := name
	if h.name != "" {
		full = h.name + "." + name
	}
	return &slogHCLog{logger: h.logger.With("component", full), name: full, args: h.args}
}

func (h *slogHCLog) ResetNamed(name string) hclog.Logger {
	return &slogHCLog{logger: h.logger.With("component", name), name: name, args: h.args}
}

// SetLevel is ignored: the slog handler owns the level for the whole process.
func (h *slogHCLog) SetLevel(hclog.Level) {}

func (h *slogHCLog) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (h *slogHCLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *slogHCLog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return lineWriter{h}
}

type lineWriter struct{ h *slogHCLog }

func (w lineWriter) Write(p []byte) (int, error) {
	w.h.Info(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
