package locator

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

const (
	maxSearchCount     = 1000
	defaultSearchCount = 100
)

// toOrganization renders a participant as a FHIR Organization, with the purposes of use it
// is allowed. The token hash never leaves the server.
func toOrganization(p model.Participant) fhir.Organization {
	var purposes []string
	for _, pu := range policy.Allowed(p) {
		purposes = append(purposes, string(pu))
	}
	return fhir.OrganizationOf(p, purposes)
}

// fromOrganization reads a participant out of an Organization, naming the element at fault
// in every error; purposes of use become canonical codes.
func fromOrganization(o fhir.Organization) (model.Participant, error) {
	p, purposes, err := fhir.ParticipantOf(o)
	if err != nil {
		return p, err
	}
	if p.Purposes, err = policy.CanonicalPurposes(purposes); err != nil {
		return p, fhir.Invalid("Organization.extension", "%v", err)
	}
	return p, nil
}

func header(rq *request) command.Header {
	return command.Header{Actor: rq.principal.ID, RequestID: rq.id}
}

func writeParticipant(w http.ResponseWriter, status int, a raft.Applied, token string) error {
	p, ok := a.Value.(model.Participant)
	if !ok {
		return fmt.Errorf("unexpected result %T", a.Value)
	}
	o := toOrganization(p)
	if token != "" {
		o = fhir.WithToken(o, token)
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, p.Version))
	w.Header().Set("Last-Modified", p.Updated.UTC().Format(http.TimeFormat))
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(a.Index, 10))
	if status == http.StatusCreated {
		w.Header().Set("Location", fmt.Sprintf("/fhir/Organization/%s/_history/%d", p.ID, p.Version))
	}
	return writeFHIR(w, status, o)
}

// createOrganization registers a participant. rls uses the client-supplied id (the
// participant id the HIE assigns) instead of assigning one, and returns the participant's
// bearer token once, in the participant-token extension.
func (s *Server) createOrganization(w http.ResponseWriter, r *http.Request, rq *request) error {
	var o fhir.Organization
	if err := fhir.Decode(bytes.NewReader(rq.body), "Organization", &o); err != nil {
		return err
	}
	p, err := fromOrganization(o)
	if err != nil {
		return err
	}
	token, err := NewToken()
	if err != nil {
		return err
	}
	p.TokenHash = TokenHash(token)
	a, err := s.node.Apply(r.Context(), command.TypeParticipantAdd, header(rq), &command.ParticipantAdd{Participant: p})
	if err != nil {
		return err
	}
	s.logger.Info("participant added", "id", p.ID, "kind", p.Kind, "role", p.Role, "by", rq.principal.ID)
	return writeParticipant(w, http.StatusCreated, a, token)
}

func (s *Server) readOrganization(w http.ResponseWriter, r *http.Request, rq *request) error {
	var p model.Participant
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		p, err = tx.Participant(r.PathValue("id"))
		return err
	})
	if err != nil {
		return err
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, p.Version))
	return writeFHIR(w, http.StatusOK, toOrganization(p))
}

// searchOrganizations lists participants, filtered by _id, name (case-insensitive
// substring), identifier (the assigning authority URI, optionally as system|value), type
// (kind) and active, paged with _count and _offset.
func (s *Server) searchOrganizations(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	for name := range q {
		switch name {
		case "_id", "name", "identifier", "type", "active", "_count", "_offset", "consistency":
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "search parameter %q is not supported on Organization", name)
		}
	}
	count, offset, err := pageParams(q, defaultSearchCount, 0, maxSearchCount)
	if err != nil {
		return err
	}
	var activeFilter *bool
	if v := q.Get("active"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fhir.Invalid("active", "active must be true or false")
		}
		activeFilter = &b
	}
	identifier := q.Get("identifier")
	if sys, val, ok := strings.Cut(identifier, "|"); ok {
		if sys != "" && sys != fhir.URISystem {
			identifier = "\x00" // a system rls does not use matches nothing
		} else {
			identifier = val
		}
	}
	var all []model.Participant
	err = s.node.State().View(func(tx *state.Tx) error {
		var err error
		all, err = tx.Participants()
		return err
	})
	if err != nil {
		return err
	}
	name := strings.ToLower(q.Get("name"))
	matches := slices.DeleteFunc(all, func(p model.Participant) bool {
		return (q.Get("_id") != "" && p.ID != q.Get("_id")) ||
			(name != "" && !strings.Contains(strings.ToLower(p.Name), name)) ||
			(identifier != "" && p.IdentifierSystem != identifier) ||
			(q.Get("type") != "" && string(p.Kind) != q.Get("type")) ||
			(activeFilter != nil && p.Active != *activeFilter)
	})
	bundle := fhir.Bundle{ResourceType: "Bundle", Type: "searchset", Total: len(matches)}
	bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "self", URL: r.URL.RequestURI()})
	end := min(offset+count, len(matches))
	if offset < end {
		for _, p := range matches[offset:end] {
			bundle.Entry = append(bundle.Entry, fhir.BundleEntry{FullURL: "Organization/" + p.ID, Resource: toOrganization(p)})
		}
	}
	if end < len(matches) {
		next := r.URL.Query()
		next.Set("_offset", strconv.Itoa(end))
		next.Set("_count", strconv.Itoa(count))
		bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "next", URL: r.URL.Path + "?" + next.Encode()})
	}
	return writeFHIR(w, http.StatusOK, bundle)
}

// pageParams reads a search's paging: _count (def when absent, within lo..hi) and _offset.
func pageParams(q url.Values, def, lo, hi int) (count, offset int, err error) {
	if count, err = intParam(q, "_count", def, lo, hi); err != nil {
		return 0, 0, err
	}
	if offset, err = intParam(q, "_offset", 0, 0, 1<<31); err != nil {
		return 0, 0, err
	}
	return count, offset, nil
}

func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fhir.Invalid(name, "%s must be a whole number from %d to %d", name, lo, hi)
	}
	return n, nil
}

// updateOrganization replaces a participant's details (not its token). If-Match: W/"n"
// makes it conditional on the version the caller read.
func (s *Server) updateOrganization(w http.ResponseWriter, r *http.Request, rq *request) error {
	var o fhir.Organization
	if err := fhir.Decode(bytes.NewReader(rq.body), "Organization", &o); err != nil {
		return err
	}
	if o.ID != r.PathValue("id") {
		return fhir.Invalid("Organization.id", "Organization.id %q does not match the id in the URL %q", o.ID, r.PathValue("id"))
	}
	p, err := fromOrganization(o)
	if err != nil {
		return err
	}
	expected, err := ifMatch(r)
	if err != nil {
		return err
	}
	a, err := s.node.Apply(r.Context(), command.TypeParticipantUpdate, header(rq), &command.ParticipantUpdate{Participant: p, ExpectedVersion: expected})
	if err != nil {
		return err
	}
	// An update may disable the participant or narrow its purposes: a security change.
	if err := s.acknowledgeSecurity(r.Context(), a.Index); err != nil {
		return err
	}
	return writeParticipant(w, http.StatusOK, a, "")
}

// ifMatch reads a FHIR version precondition: W/"3" (or "3").
func ifMatch(r *http.Request) (uint64, error) {
	v := r.Header.Get("If-Match")
	if v == "" {
		return 0, nil
	}
	v = strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fhir.Invalid("If-Match", `If-Match must be a version such as W/"3"`)
	}
	return n, nil
}

// organizationOperation runs $disable, $enable and $rotate-token on a participant.
func (s *Server) organizationOperation(w http.ResponseWriter, r *http.Request, rq *request) error {
	id := r.PathValue("id")
	if err := model.ValidateID("id", id); err != nil {
		return fhir.Invalid("Organization.id", "%v", err)
	}
	switch op := r.PathValue("operation"); op {
	case "$disable", "$enable":
		a, err := s.node.Apply(r.Context(), command.TypeParticipantSetActive, header(rq), command.ParticipantSetActive{ID: id, Active: op == "$enable"})
		if err != nil {
			return err
		}
		if err := s.acknowledgeSecurity(r.Context(), a.Index); err != nil {
			return err
		}
		s.logger.Info("participant "+strings.TrimPrefix(op, "$")+"d", "id", id, "by", rq.principal.ID)
		return writeParticipant(w, http.StatusOK, a, "")
	case "$rotate-token":
		token, err := NewToken()
		if err != nil {
			return err
		}
		a, err := s.node.Apply(r.Context(), command.TypeParticipantRotateToken, header(rq), command.ParticipantRotateToken{ID: id, TokenHash: TokenHash(token)})
		if err != nil {
			return err
		}
		if err := s.acknowledgeSecurity(r.Context(), a.Index); err != nil {
			return err
		}
		s.logger.Info("participant token rotated", "id", id, "by", rq.principal.ID)
		return writeParticipant(w, http.StatusOK, a, token)
	case "$revoke-token":
		a, err := s.node.Apply(r.Context(), command.TypeParticipantRevokeToken, header(rq), command.ParticipantRevokeToken{ID: id})
		if err != nil {
			return err
		}
		if err := s.acknowledgeSecurity(r.Context(), a.Index); err != nil {
			return err
		}
		s.logger.Info("participant token revoked", "id", id, "by", rq.principal.ID)
		return writeParticipant(w, http.StatusOK, a, "")
	default:
		return fhir.Errorf(http.StatusNotFound, "not-supported", "", "operation %q is not supported on Organization (use $disable, $enable, $rotate-token or $revoke-token)", op)
	}
}
