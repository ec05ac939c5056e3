package locator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/raft"
	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/raft/state"
)

// Subscriptions (FHIR R4 Subscription, R5 Backport IG, rest-hook): a participant subscribes
// itself to a topic (model.Topics) at an endpoint; the leader's notifier (notifier.go)
// delivers each event the subscriber may see. A participant reads and changes its own
// subscriptions; the admin reads and changes every one (to turn off a failing endpoint) but
// subscribes only itself. Any other subscription is, to a participant, one that does not
// exist.

func newSubscriptionID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("draw subscription id: %w", err)
	}
	return "s" + hex.EncodeToString(b[:]), nil
}

func newSubscriptionSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("draw subscription secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// checkSubscriptionRules holds a subscription to what the API knows and Apply does not: the
// endpoint policy of this node's configuration, and a purpose of use the subscriber is
// granted.
func (s *Server) checkSubscriptionRules(m model.Subscription, subscriber model.Participant) error {
	if err := s.notifyPolicy().CheckEndpoint(m.Endpoint); err != nil {
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Subscription.channel.endpoint", "%v", err)
	}
	if _, err := policy.Authorize(subscriber, m.Purpose, ""); err != nil {
		return fhir.Errorf(http.StatusForbidden, "forbidden", "Subscription.extension", "purpose of use: %v", err)
	}
	return nil
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request, rq *request) error {
	var in fhir.Subscription
	if err := fhir.Decode(bytes.NewReader(rq.body), "Subscription", &in); err != nil {
		return err
	}
	if in.ID != "" {
		return fhir.Invalid("Subscription.id", "rls assigns the id of a new Subscription; use PUT /fhir/Subscription/{id} to change one")
	}
	m, err := fhir.SubscriptionOf(in, r.Header.Get("X-Rls-Purpose-Of-Use"))
	if err != nil {
		return err
	}
	if err := s.checkSubscriptionRules(m, rq.principal); err != nil {
		return err
	}
	p, err := policy.ParsePurpose(m.Purpose)
	if err != nil {
		return fhir.Invalid("Subscription.extension", "%v", err)
	}
	m.Purpose = string(p)
	if m.ID, err = newSubscriptionID(); err != nil {
		return err
	}
	secret := m.Secret
	if secret == "" {
		if secret, err = newSubscriptionSecret(); err != nil {
			return err
		}
	}
	m.Secret, m.Participant = secret, rq.principal.ID
	out, idx, err := s.setSubscription(r, rq, command.SubscriptionSet{Subscription: m, Create: true})
	if err != nil {
		return err
	}
	res := fhir.SubscriptionResource(out)
	// The secret is shown once, to its subscriber, in the answer to the creation.
	res.Extension = append(res.Extension, fhir.Extension{URL: fhir.ExtSubscriptionSecret, ValueString: secret})
	w.Header().Set("Location", fmt.Sprintf("/fhir/Subscription/%s/_history/%d", out.ID, out.Version))
	return writeSubscription(w, http.StatusCreated, out, res, idx)
}

func (s *Server) updateSubscription(w http.ResponseWriter, r *http.Request, rq *request) error {
	var in fhir.Subscription
	if err := fhir.Decode(bytes.NewReader(rq.body), "Subscription", &in); err != nil {
		return err
	}
	id := r.PathValue("id")
	if in.ID != id {
		return fhir.Invalid("Subscription.id", "Subscription.id %q does not match the id in the URL %q", in.ID, id)
	}
	expected, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := s.node.SyncLocal(r.Context()); err != nil {
		return err
	}
	var old model.Subscription
	var subscriber model.Participant
	err = s.node.State().View(func(tx *state.Tx) error {
		var err error
		if old, err = visibleSubscription(tx, id, rq.principal); err != nil {
			return err
		}
		subscriber, err = tx.Participant(old.Participant)
		return err
	})
	if err != nil {
		return err
	}
	purpose := old.Purpose
	if h := r.Header.Get("X-Rls-Purpose-Of-Use"); h != "" {
		purpose = h
	}
	m, err := fhir.SubscriptionOf(in, purpose)
	if err != nil {
		return err
	}
	if m.Topic != old.Topic {
		return fhir.Errorf(http.StatusUnprocessableEntity, "business-rule", "Subscription.criteria", "the topic of a subscription cannot change (it is %s): create another", old.Topic)
	}
	if err := s.checkSubscriptionRules(m, subscriber); err != nil {
		return err
	}
	p, err := policy.ParsePurpose(m.Purpose)
	if err != nil {
		return fhir.Invalid("Subscription.extension", "%v", err)
	}
	m.Purpose = string(p)
	m.ID, m.Participant = old.ID, old.Participant
	if m.Secret == "" {
		m.Secret = old.Secret
	}
	out, idx, err := s.setSubscription(r, rq, command.SubscriptionSet{Subscription: m, ExpectedVersion: expected})
	if err != nil {
		return err
	}
	return writeSubscription(w, http.StatusOK, out, fhir.SubscriptionResource(out), idx)
}

// setSubscription proposes a subscription, checked as the FSM will check it.
func (s *Server) setSubscription(r *http.Request, rq *request, cmd command.SubscriptionSet) (model.Subscription, uint64, error) {
	if err := cmd.Check(); err != nil {
		return model.Subscription{}, 0, fhir.Invalid("Subscription", "%v", err)
	}
	a, err := s.node.Apply(r.Context(), command.TypeSubscriptionSet, header(rq), &cmd)
	switch {
	case errors.Is(err, raft.ErrSubscriptionExists):
		return model.Subscription{}, 0, notApplied(fhir.Errorf(http.StatusServiceUnavailable, "transient", "", "subscription id collision; retry"))
	case errors.Is(err, raft.ErrUnknownSubscription):
		return model.Subscription{}, 0, fhir.Errorf(http.StatusNotFound, "not-found", "", "Subscription/%s does not exist", cmd.Subscription.ID)
	case err != nil:
		return model.Subscription{}, 0, err
	}
	out, ok := a.Value.(model.Subscription)
	if !ok {
		return out, 0, fmt.Errorf("subscription: unexpected result %T", a.Value)
	}
	s.logger.Info("subscription recorded", "subscription", out.ID, "participant", out.Participant, "topic", out.Topic,
		"status", out.Status, "by", rq.principal.ID, "request_id", rq.id)
	return out, a.Index, nil
}

func writeSubscription(w http.ResponseWriter, status int, m model.Subscription, res fhir.Subscription, index uint64) error {
	w.Header().Set("ETag", fmt.Sprintf(`W/"%d"`, m.Version))
	if index != 0 {
		w.Header().Set(HeaderRaftIndex, strconv.FormatUint(index, 10))
	}
	return writeFHIR(w, status, res)
}

// visibleSubscription returns a subscription the caller may see: the admin any, a
// participant its own. Any other answers as one that does not exist.
func visibleSubscription(tx *state.Tx, id string, p model.Participant) (model.Subscription, error) {
	m, ok, err := tx.Subscription(id)
	if err != nil {
		return m, err
	}
	if !ok || (!p.IsAdmin() && m.Participant != p.ID) {
		return m, fhir.Errorf(http.StatusNotFound, "not-found", "", "Subscription/%s does not exist", id)
	}
	return m, nil
}

func (s *Server) readSubscription(w http.ResponseWriter, r *http.Request, rq *request) error {
	var m model.Subscription
	var head uint64
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		m, err = visibleSubscription(tx, r.PathValue("id"), rq.principal)
		head = tx.NotifyHead()
		return err
	})
	if err != nil {
		return err
	}
	return writeSubscription(w, http.StatusOK, m, fhir.SubscriptionProgress(fhir.SubscriptionResource(m), m, head), 0)
}

// subscriptionStatus is the Backport IG's $status operation: the SubscriptionStatus (type
// query-status) of one subscription, with its progress and last error.
func (s *Server) subscriptionStatus(w http.ResponseWriter, r *http.Request, rq *request) error {
	var m model.Subscription
	err := s.node.State().View(func(tx *state.Tx) error {
		var err error
		m, err = visibleSubscription(tx, r.PathValue("id"), rq.principal)
		return err
	})
	if err != nil {
		return err
	}
	st := fhir.SubscriptionStatus(m, "query-status", m.Delivered, nil)
	return writeFHIR(w, http.StatusOK, st)
}

// searchSubscriptions lists the caller's subscriptions (the admin: all), by id, filtered by
// status and criteria (topic) if given.
func (s *Server) searchSubscriptions(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	for name := range q {
		switch name {
		case "status", "criteria", "_count", "_offset", "consistency":
		default:
			return fhir.Errorf(http.StatusBadRequest, "not-supported", name, "search parameter %q is not supported on Subscription", name)
		}
	}
	count, offset, err := pageParams(q, defaultSearchCount, 0, maxSearchCount)
	if err != nil {
		return err
	}
	var found []model.Subscription
	var head uint64
	err = s.node.State().View(func(tx *state.Tx) error {
		head = tx.NotifyHead()
		all, err := tx.Subscriptions()
		for _, m := range all {
			if (rq.principal.IsAdmin() || m.Participant == rq.principal.ID) &&
				(q.Get("status") == "" || m.Status == q.Get("status")) && (q.Get("criteria") == "" || m.Topic == q.Get("criteria")) {
				found = append(found, m)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	var entries []fhir.BundleEntry
	for i := offset; i < min(offset+count, len(found)); i++ {
		entries = append(entries, fhir.BundleEntry{FullURL: "Subscription/" + found[i].ID, Resource: fhir.SubscriptionProgress(fhir.SubscriptionResource(found[i]), found[i], head), Search: &fhir.SearchInfo{Mode: "match"}})
	}
	return writeFHIR(w, http.StatusOK, searchset(r, entries, len(found), offset, count))
}
