package locator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// MLLP endpoints for PIX update notifications, as FHIR Endpoint resources (connection
// type hl7v2-mllp, address mllp://host:port or mllps://host:port, the domains wanted as
// pix-domain extensions). A participant registers and changes its own; the admin anyone's.
// Status off (or suspended) stops the notifications; turned active again, an endpoint is
// notified of the changes from then on.

func (s *Server) endpointRoutes() []route {
	return []route{
		{method: "POST", pattern: "/fhir/Endpoint", access: participant, place: onLeader, handle: s.createEndpoint},
		{method: "PUT", pattern: "/fhir/Endpoint/{id}", access: participant, place: onLeader, handle: s.updateEndpoint},
		{method: "GET", pattern: "/fhir/Endpoint/{id}", access: participant, place: byConsistency, handle: s.readEndpoint},
		{method: "GET", pattern: "/fhir/Endpoint", access: participant, place: byConsistency, handle: s.searchEndpoints},
	}
}

// endpointFromResource reads an Endpoint for participant caller: its own, or, for the
// admin, any participant's.
func endpointFromResource(e fhir.EndpointResource, caller model.Participant) (model.HL7Endpoint, error) {
	m, err := fhir.HL7EndpointOf(e, caller.ID)
	if err != nil {
		return m, err
	}
	if m.Participant != caller.ID && !caller.IsAdmin() {
		return m, fhir.Errorf(http.StatusForbidden, "forbidden", "Endpoint.managingOrganization", "participant %q registers endpoints for itself only", caller.ID)
	}
	return m, nil
}

func newEndpointID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("draw endpoint id: %w", err)
	}
	return "ep" + hex.EncodeToString(b[:]), nil
}

// createEndpoint is POST /fhir/Endpoint.
func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request, rq *request) error {
	var res fhir.EndpointResource
	if err := fhir.Decode(bytes.NewReader(rq.body), "Endpoint", &res); err != nil {
		return err
	}
	id, err := newEndpointID()
	if err != nil {
		return err
	}
	m, err := endpointFromResource(res, rq.principal)
	if err != nil {
		return err
	}
	m.ID = id
	return s.setEndpoint(w, r, rq, m, 0, true)
}

// updateEndpoint is PUT /fhir/Endpoint/{id} (If-Match optional).
func (s *Server) updateEndpoint(w http.ResponseWriter, r *http.Request, rq *request) error {
	var res fhir.EndpointResource
	if err := fhir.Decode(bytes.NewReader(rq.body), "Endpoint", &res); err != nil {
		return err
	}
	id := r.PathValue("id")
	if res.ID != "" && res.ID != id {
		return fhir.Invalid("Endpoint.id", "Endpoint.id %q does not match the id in the URL %q", res.ID, id)
	}
	old, err := s.visibleEndpoint(r, rq, id)
	if err != nil {
		return err
	}
	m, err := endpointFromResource(res, rq.principal)
	if err != nil {
		return err
	}
	if m.Participant != old.Participant && !rq.principal.IsAdmin() {
		return fhir.Errorf(http.StatusForbidden, "forbidden", "Endpoint.managingOrganization", "an endpoint stays with its participant")
	}
	m.ID = id
	expected, err := ifMatch(r)
	if err != nil {
		return err
	}
	return s.setEndpoint(w, r, rq, m, expected, false)
}

func (s *Server) setEndpoint(w http.ResponseWriter, r *http.Request, rq *request, m model.HL7Endpoint, expected uint64, create bool) error {
	// Checked here so that the FSM refuses it only when the participant is removed in
	// between (the route runs on the leader; SyncLocal makes what it applied readable).
	if err := s.node.SyncLocal(r.Context()); err != nil {
		return err
	}
	known := false
	if err := s.node.State().View(func(tx *state.Tx) error { known = tx.HasParticipant(m.Participant); return nil }); err != nil {
		return err
	}
	if !known {
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Endpoint.managingOrganization", "participant %q does not exist", m.Participant)
	}
	a, err := s.node.Apply(r.Context(), command.TypeHL7EndpointSet, header(rq), &command.HL7EndpointSet{Endpoint: m, ExpectedVersion: expected, Create: create})
	switch {
	case errors.Is(err, raft.ErrUnknownEndpoint):
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "Endpoint/%s does not exist", m.ID)
	case errors.Is(err, raft.ErrEndpointExists):
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "endpoint id taken; retry"))
	case errors.Is(err, state.ErrNotFound):
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Endpoint.managingOrganization", "participant %q does not exist", m.Participant)
	case err != nil:
		return err
	}
	stored := a.Value.(model.HL7Endpoint)
	s.logger.Info("hl7 endpoint set", "endpoint", stored.ID, "participant", stored.Participant, "status", stored.Status, "by", rq.principal.ID)
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, stored.Version))
	w.Header().Set(HeaderRaftIndex, strconv.FormatUint(a.Index, 10))
	status := http.StatusOK
	if create {
		status = http.StatusCreated
		w.Header().Set("Location", "/fhir/Endpoint/"+stored.ID)
	}
	return writeFHIR(w, status, fhir.EndpointOf(stored))
}

// visibleEndpoint reads an endpoint the caller may see: its own, or any for the admin. An
// endpoint of another participant is answered as one that does not exist.
func (s *Server) visibleEndpoint(r *http.Request, rq *request, id string) (model.HL7Endpoint, error) {
	if err := s.node.SyncLocal(r.Context()); err != nil {
		return model.HL7Endpoint{}, err
	}
	var e model.HL7Endpoint
	var ok bool
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		e, ok, err = tx.HL7Endpoint(id)
		return err
	})
	if err != nil {
		return e, err
	}
	if !ok || (e.Participant != rq.principal.ID && !rq.principal.IsAdmin()) {
		return e, fhir.Errorf(http.StatusNotFound, "not-found", "", "Endpoint/%s does not exist", id)
	}
	return e, nil
}

// readEndpoint is GET /fhir/Endpoint/{id}.
func (s *Server) readEndpoint(w http.ResponseWriter, r *http.Request, rq *request) error {
	e, err := s.visibleEndpoint(r, rq, r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, e.Version))
	return writeFHIR(w, http.StatusOK, fhir.EndpointOf(e))
}

// searchEndpoints is GET /fhir/Endpoint[?organization=ID]: the caller's endpoints (the
// admin's: everyone's, or one participant's).
func (s *Server) searchEndpoints(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	org := ""
	for name := range q {
		switch name {
		case "organization":
			org = strings.TrimPrefix(q.Get(name), "Organization/")
		case "consistency":
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "search parameter %q is not supported on Endpoint", name)
		}
	}
	var all []model.HL7Endpoint
	if err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		all, err = tx.HL7Endpoints()
		return err
	}); err != nil {
		return err
	}
	var entries []fhir.BundleEntry
	for _, e := range all {
		if (e.Participant == rq.principal.ID || rq.principal.IsAdmin()) && (org == "" || e.Participant == org) {
			entries = append(entries, fhir.BundleEntry{FullURL: "Endpoint/" + e.ID, Resource: fhir.EndpointOf(e), Search: &fhir.SearchInfo{Mode: "match"}})
		}
	}
	return writeFHIR(w, http.StatusOK, fhir.Bundle{ResourceType: "Bundle", Type: "searchset", Total: len(entries), Entry: entries})
}
