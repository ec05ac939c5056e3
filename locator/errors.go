package locator

import (
	"context"
	"errors"
	"net/http"

	"github.com/rls-hie/rls/locator/fence"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/mpi"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// apiError turns any error into the API error the caller sees. Sentinels of the layers
// below map to their HTTP status here, and only here.
func apiError(err error) *fhir.Error {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe
	}
	msg := err.Error()
	switch {
	case errors.Is(err, raft.ErrEntryFailed):
		// Never from a request the API checked: a bug, or an entry from an older release.
		return fhir.Errorf(http.StatusInternalServerError, "exception", "", "%s; nothing was changed, and retrying will fail the same way", msg)
	case errors.Is(err, model.ErrInvalid), errors.Is(err, state.ErrNotState), errors.Is(err, state.ErrSearchTooBroad):
		return fhir.Errorf(http.StatusBadRequest, "invalid", "", "%s", msg)
	case errors.Is(err, state.ErrNotFound), errors.Is(err, raft.ErrNodeNotFound), errors.Is(err, mpi.ErrNotFound):
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "%s", msg)
	case errors.Is(err, raft.ErrParticipantExists), errors.Is(err, raft.ErrSystemInUse), errors.Is(err, raft.ErrNodeExists):
		return fhir.Errorf(http.StatusConflict, "duplicate", "", "%s", msg)
	case errors.Is(err, raft.ErrStaleConfig):
		return fhir.Errorf(http.StatusConflict, "conflict", "", "%s", msg)
	case errors.Is(err, raft.ErrInvalidConfig), errors.Is(err, raft.ErrInvalidRecord):
		return fhir.Errorf(http.StatusBadRequest, "invalid", "", "%s", msg)
	case errors.Is(err, raft.ErrUnknownRecord), errors.Is(err, raft.ErrUnknownPerson), errors.Is(err, raft.ErrUnknownReview):
		return fhir.Errorf(http.StatusNotFound, "not-found", "", "%s", msg)
	case errors.Is(err, raft.ErrAlreadyResolved), errors.Is(err, raft.ErrNothingToUndo):
		return fhir.Errorf(http.StatusConflict, "conflict", "", "%s", msg)
	case errors.Is(err, raft.ErrInvalidAction):
		return fhir.Errorf(http.StatusBadRequest, "invalid", "", "%s", msg)
	case errors.Is(err, raft.ErrInvalidSubmission):
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Bundle", "%s; nothing of the submission was written", msg)
	case errors.Is(err, raft.ErrInvalidDocument):
		return fhir.Errorf(http.StatusBadRequest, "invalid", "", "%s", msg)
	case errors.Is(err, raft.ErrNotHolder):
		return fhir.Errorf(http.StatusForbidden, "forbidden", "", "%s", msg)
	case errors.Is(err, raft.ErrUnknownSubject), errors.Is(err, raft.ErrUnknownHolder), errors.Is(err, raft.ErrUnknownTarget):
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "%s", msg)
	case errors.Is(err, raft.ErrUnknownSystem):
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "%s", msg)
	case errors.Is(err, raft.ErrVersionConflict):
		// R4: a version the If-Match names that is not the current one is 412.
		return fhir.Errorf(http.StatusPreconditionFailed, "conflict", "", "%s", msg)
	case errors.Is(err, raft.ErrLastAdmin), errors.Is(err, raft.ErrLastVoter), errors.Is(err, raft.ErrAlreadyBootstrapped):
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "", "%s", msg)
	case errors.Is(err, raft.ErrTokenInUse), errors.Is(err, raft.ErrEUIDInUse):
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "%s; retry", msg))
	case errors.Is(err, fence.ErrUnfenced):
		// This node cannot show it holds every acknowledged security change: nothing was
		// read or changed.
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "%s", msg))
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrLeaderNotReady):
		return notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "%s; retry shortly", msg))
	case errors.Is(err, raft.ErrOutcomeUnknown):
		return fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "%s; check before retrying", msg)
	case errors.Is(err, context.DeadlineExceeded):
		return fhir.Errorf(http.StatusGatewayTimeout, "timeout", "", "%s", msg)
	}
	return fhir.Errorf(http.StatusInternalServerError, "exception", "", "%s", msg)
}

// notApplied marks an error as certainly having changed nothing, so that clients and
// forwarding nodes may retry it.
func notApplied(e *fhir.Error) *fhir.Error {
	if e.Header == nil {
		e.Header = map[string]string{}
	}
	e.Header[HeaderNotApplied] = "true"
	e.Header["Retry-After"] = "1"
	return e
}

func (s *Server) writeError(w *responseWriter, err error) {
	fe := apiError(err)
	if fe.Status >= 500 && fe.Status != http.StatusServiceUnavailable {
		s.logger.Error("request failed", "err", err)
	}
	for k, v := range fe.Header {
		w.Header().Set(k, v)
	}
	if leader, lerr := s.node.Leader(); lerr == nil && fe.Status == http.StatusServiceUnavailable {
		w.Header().Set(HeaderLeader, leader.ID)
	}
	if w.status != 0 {
		return // the answer had started; nothing more can be said
	}
	_ = writeFHIR(w, fe.Status, fe.Outcome())
}
