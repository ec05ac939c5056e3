package locator

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/rls-hie/rls/locator/fhir"
)

// FHIR R4 HTTP semantics shared by every /fhir route: content negotiation (Accept, _format,
// Content-Type), the service base that makes Bundle links, entry.fullUrl and Location
// absolute, and vread.

// headerForwardedBase carries, from the node a client called to the leader it forwards to,
// the FHIR base URL the client used, so that the leader's absolute URLs point where the
// client can follow them. Believed only from a node.
const headerForwardedBase = "X-Rls-Forwarded-Base"

// jsonTypes are the media types rls reads and writes FHIR resources as. XML is not served.
var jsonTypes = []string{"application/fhir+json", "application/json", "application/json+fhir", "json"}

// negotiate applies FHIR's content negotiation before a /fhir handler runs: _format (json
// or a JSON media type; xml is 406), Accept (406 unless it admits JSON), and the
// Content-Type of a body (415 unless JSON). It reads _pretty too: answers are compact JSON
// unless the client asks for them indented (_pretty=true), as FHIR leaves it to the
// server; indenting cost a tenth of a $match's CPU for clients that are programs. It then
// removes _format and _pretty from the query, so that no handler has to know them.
func negotiate(r *http.Request, body []byte) (pretty bool, err error) {
	q := r.URL.Query()
	if p, ok := q["_pretty"]; ok {
		for _, v := range p {
			switch v {
			case "true":
				pretty = true
			case "false":
				pretty = false
			default:
				return false, fhir.Invalid("_pretty", "_pretty is true or false, not %q", fhir.Clip(v))
			}
		}
	}
	if f, ok := q["_format"]; ok {
		for _, v := range f {
			// An unencoded "+" (application/fhir+json) arrives as a space.
			mt := strings.ToLower(strings.TrimSpace(strings.SplitN(strings.ReplaceAll(v, " ", "+"), ";", 2)[0]))
			if mt == "" || !contains(jsonTypes, mt) {
				return false, fhir.Errorf(http.StatusNotAcceptable, "not-supported", "_format", "_format %q is not served: rls serves FHIR as JSON only (_format=json or application/fhir+json)", fhir.Clip(v))
			}
		}
	} else if accept := r.Header.Get("Accept"); accept != "" && !acceptsJSON(accept) {
		return false, fhir.Errorf(http.StatusNotAcceptable, "not-supported", "", "Accept %q admits no format rls serves: FHIR is served as application/fhir+json only", fhir.Clip(accept))
	}
	if q.Has("_pretty") || q.Has("_format") {
		q.Del("_pretty")
		q.Del("_format")
		r.URL.RawQuery = q.Encode()
	}
	if len(body) > 0 && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			return pretty, nil // a client that names no type: the body is read as JSON, and refused if it is not
		}
		mt, _, err := mime.ParseMediaType(ct)
		if err == nil && strings.HasSuffix(r.URL.Path, "/_search") && strings.ToLower(mt) == "application/x-www-form-urlencoded" {
			return pretty, nil // search parameters, not a resource
		}
		if err != nil || !contains(jsonTypes, strings.ToLower(mt)) {
			return false, fhir.Errorf(http.StatusUnsupportedMediaType, "not-supported", "", "Content-Type %q is not accepted: send FHIR resources as application/fhir+json", fhir.Clip(ct))
		}
	}
	return pretty, nil
}

// acceptsJSON reads an Accept header: does it admit application/fhir+json (or JSON, or any
// type) with a quality above zero?
func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if params["q"] == "0" || strings.HasPrefix(params["q"], "0.0") && strings.Trim(params["q"], "0.") == "" {
			continue
		}
		mt = strings.ToLower(mt)
		if mt == "*/*" || mt == "application/*" || contains(jsonTypes, mt) {
			return true
		}
	}
	return false
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// fhirBase is the service base URL of a request: the configured public base, else (on a
// request forwarded by a node) the base the client used at that node, else the scheme and
// host the request came to, with /fhir.
func (s *Server) fhirBase(r *http.Request, rq *request) string {
	if s.opts.PublicBaseURL != "" {
		return strings.TrimRight(s.opts.PublicBaseURL, "/")
	}
	if rq.fromNode {
		if b := r.Header.Get(headerForwardedBase); b != "" {
			if u, err := url.Parse(b); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
				return strings.TrimRight(b, "/")
			}
		}
	}
	return requestBase(r)
}

// requestBase is the FHIR base of the node a request came to.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir"
}

// absolute turns a URL rls writes (a path under /fhir, or a relative Type/id) into an
// absolute one under base.
func absolute(base, u string) string {
	switch {
	case u == "" || strings.Contains(u, "://") || strings.HasPrefix(u, "urn:"):
		return u
	case strings.HasPrefix(u, "/fhir/") || u == "/fhir":
		return base + strings.TrimPrefix(u, "/fhir")
	case strings.HasPrefix(u, "/"):
		return base + u
	}
	return base + "/" + u
}

// absolutize makes a Bundle's links and entries' fullUrl absolute, and a Location header.
func absolutize(w http.ResponseWriter, v any) any {
	rw := responseWriterOf(w)
	if rw == nil || rw.base == "" {
		return v
	}
	if loc := w.Header().Get("Location"); loc != "" {
		w.Header().Set("Location", absolute(rw.base, loc))
	}
	var b *fhir.Bundle
	switch x := v.(type) {
	case fhir.Bundle:
		b = &x
	case *fhir.Bundle:
		c := *x
		b = &c
	case transactionResponse:
		for i := range x.Entry {
			if x.Entry[i].Response != nil {
				resp := *x.Entry[i].Response
				resp.Location = absolute(rw.base, resp.Location)
				x.Entry[i].Response = &resp
			}
		}
		return x
	default:
		return v
	}
	b.Link = append([]fhir.BundleLink(nil), b.Link...)
	for i := range b.Link {
		b.Link[i].URL = absolute(rw.base, b.Link[i].URL)
	}
	b.Entry = append([]fhir.BundleEntry(nil), b.Entry...)
	for i := range b.Entry {
		b.Entry[i].FullURL = absolute(rw.base, b.Entry[i].FullURL)
		if b.Entry[i].Response != nil && b.Entry[i].Response.Location != "" {
			resp := *b.Entry[i].Response
			resp.Location = absolute(rw.base, resp.Location)
			b.Entry[i].Response = &resp
		}
	}
	return *b
}

// vread serves GET /fhir/{type}/{id}/_history/{vid} with the read handler of the type: the
// current version when vid is it; rls keeps no earlier version of a resource, so any other
// vid is a 404 that says so.
func vread(read handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, rq *request) error {
		vid := r.PathValue("vid")
		rw, ok := w.(*responseWriter)
		if !ok {
			return fmt.Errorf("vread needs the API's response writer")
		}
		vw := &versionWriter{responseWriter: rw, want: fmt.Sprintf(`W/"%s"`, vid)}
		if err := read(vw, r, rq); err != nil {
			return err
		}
		if vw.mismatch {
			return fhir.Errorf(http.StatusNotFound, "not-found", "", "version %s of %s/%s is not kept: rls keeps the current version (%s) only", fhir.Clip(vid), r.PathValue("type"), r.PathValue("id"), strings.Trim(strings.TrimPrefix(vw.got, "W/"), `"`))
		}
		return nil
	}
}

// responseWriterOf finds the request's responseWriter behind w (nil for an answer written
// elsewhere, such as an HL7 route's in-memory FHIR call).
func responseWriterOf(w http.ResponseWriter) *responseWriter {
	switch x := w.(type) {
	case *responseWriter:
		return x
	case *versionWriter:
		return x.responseWriter
	}
	return nil
}

// versionWriter passes an answer through only if its ETag is the version asked for.
type versionWriter struct {
	*responseWriter
	want, got string
	mismatch  bool
	decided   bool
}

func (v *versionWriter) WriteHeader(status int) {
	if !v.decided {
		v.decided = true
		v.got = v.Header().Get("ETag")
		if status == http.StatusOK && v.got != v.want {
			v.mismatch = true
			for _, h := range []string{"Content-Type", "ETag", "Last-Modified", "Location"} {
				v.Header().Del(h)
			}
			return
		}
	}
	if !v.mismatch {
		v.responseWriter.WriteHeader(status)
	}
}

func (v *versionWriter) Write(b []byte) (int, error) {
	if !v.decided {
		v.WriteHeader(http.StatusOK)
	}
	if v.mismatch {
		return len(b), nil
	}
	return v.responseWriter.Write(b)
}
