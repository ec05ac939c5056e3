package locator

import (
	"errors"
	"log/slog"
	"net/url"
	"strings"
)

// Query strings carry demographics (locate?family=…&birthdate=…, Patient?name=…), which must
// never reach a log: logs carry ids only. Paths hold ids (Patient ids, EUIDs), never names.

// stripQuery drops the query of a URL.
func stripQuery(u string) string {
	base, _, _ := strings.Cut(u, "?")
	return base
}

// redactErr removes the query of the URL an HTTP client error names (url.Error quotes it).
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: stripQuery(ue.URL), Err: ue.Err}
	}
	return err
}

// redactingLogger is the forwarding client's logger (retryablehttp.LeveledLogger): it logs
// the URLs and errors retryablehttp reports without their query strings.
type redactingLogger struct{ l *slog.Logger }

func (r redactingLogger) Error(msg string, kv ...any) { r.l.Error(msg, redact(kv)...) }
func (r redactingLogger) Info(msg string, kv ...any)  { r.l.Info(msg, redact(kv)...) }
func (r redactingLogger) Debug(msg string, kv ...any) { r.l.Debug(msg, redact(kv)...) }
func (r redactingLogger) Warn(msg string, kv ...any)  { r.l.Warn(msg, redact(kv)...) }

func redact(kv []any) []any {
	out := make([]any, len(kv))
	for i, v := range kv {
		switch x := v.(type) {
		case error:
			out[i] = redactErr(x)
		case *url.URL:
			out[i] = stripQuery(x.String())
		case string:
			if i > 0 && kv[i-1] == "url" {
				x = stripQuery(x)
			}
			out[i] = x
		default:
			out[i] = v
		}
	}
	return out
}
