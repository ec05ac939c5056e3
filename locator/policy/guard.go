package policy

import (
	"fmt"
	"slices"

	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/search"
)

// State is what a Guard reads of the replicated state: locator implements it over the read
// transaction of the request the guard belongs to, so that every decision and the answer
// it protects see the same state.
type State interface {
	// PersonRecords lists the record keys of a person (none if there is no such person).
	PersonRecords(euid string) ([]string, error)
	// ConsentsOfRecords returns the directives anchored to any of the records.
	ConsentsOfRecords(records []string) ([]model.Consent, error)
	// RecordPerson returns the EUID of the person a record belongs to; ok is false for a
	// record that is not registered.
	RecordPerson(key string) (euid string, ok bool, err error)
	// RecordOwner returns the participant that holds a record ("" if none does).
	RecordOwner(key string) (string, error)
}

// Guard applies Decide to what one request is about to disclose. Handlers ask it about
// every patient (person or record) before putting them in an answer, and answer a denied
// patient exactly as an unknown one. A nil *Guard (a route that discloses no patient data)
// denies everything, so a handler wired to the wrong route fails closed.
type Guard struct {
	access Access
	// cache holds decisions by EUID for the request (a search meets a person many times).
	cache map[string]Decision
	// brokeGlass lists the persons disclosed only because of break-the-glass.
	brokeGlass []string
	denied     int
}

// NewGuard returns the guard of a request the policy point admitted with a.
func NewGuard(a Access) *Guard {
	return &Guard{access: a, cache: map[string]Decision{}}
}

// noContext is the decision of a nil guard.
func noContext() Decision { return Decision{Reason: "no policy context"} }

// Person decides for a person: the directives of all its current records apply.
func (g *Guard) Person(st State, euid string) (Decision, error) {
	if g == nil {
		return noContext(), nil
	}
	if d, ok := g.cache[euid]; ok {
		return d, nil
	}
	records, err := st.PersonRecords(euid)
	if err != nil {
		return Decision{}, fmt.Errorf("records of person %s: %w", euid, err)
	}
	directives, err := st.ConsentsOfRecords(records)
	if err != nil {
		return Decision{}, fmt.Errorf("consent of person %s: %w", euid, err)
	}
	d := Decide(g.access, directives, false)
	g.note(euid, d)
	g.cache[euid] = d
	return d, nil
}

// PersonWith decides for a person whose directives the caller gathered already (a
// registration's answer carries those of the person it joined, read where it was applied).
func (g *Guard) PersonWith(euid string, directives []model.Consent) Decision {
	if g == nil {
		return noContext()
	}
	d := Decide(g.access, directives, false)
	g.note(euid, d)
	g.cache[euid] = d
	return d
}

func (g *Guard) note(euid string, d Decision) {
	if !d.Disclose {
		g.denied++
	}
	if d.BrokeGlass && !slices.Contains(g.brokeGlass, euid) {
		g.brokeGlass = append(g.brokeGlass, euid)
	}
}

// Record decides for one source record: its owner always sees it (the owner holds it; that
// discloses nothing), anyone else as for the record's person.
func (g *Guard) Record(st State, key string) (Decision, error) {
	if g == nil {
		return noContext(), nil
	}
	if owner, err := st.RecordOwner(key); err != nil {
		return Decision{}, err
	} else if owner != "" && owner == g.access.Participant {
		return Decide(g.access, nil, true), nil
	}
	return g.RecordPerson(st, key)
}

// RecordPerson decides for a record as for its person, owner or not: for what others
// registered about the record (documents held elsewhere), which the owner does not hold.
func (g *Guard) RecordPerson(st State, key string) (Decision, error) {
	if g == nil {
		return noContext(), nil
	}
	euid, ok, err := st.RecordPerson(key)
	if err != nil {
		return Decision{}, fmt.Errorf("record %s: %w", key, err)
	}
	if !ok {
		// Unknown: nothing to disclose, and answering "unknown" is what the caller gets anyway.
		return Decision{Disclose: true, Reason: ReasonNoDirective}, nil
	}
	return g.Person(st, euid)
}

// DeniedScope stands in for a document search's patients when all of them are denied: it
// matches nothing, exactly as an unknown patient does.
const DeniedScope = "unknown|denied"

// DocumentScope narrows a document search's patients (records and persons) to those the
// caller may see, and returns the security labels to withhold.
func (g *Guard) DocumentScope(st State, records, euids []string) (keptRecords, keptEUIDs, withhold []string, err error) {
	add := func(d Decision) {
		for _, l := range d.WithholdLabels {
			if !slices.Contains(withhold, l) {
				withhold = append(withhold, l)
			}
		}
	}
	for _, e := range euids {
		d, err := g.Person(st, e)
		if err != nil {
			return nil, nil, nil, err
		}
		if d.Disclose {
			keptEUIDs = append(keptEUIDs, e)
			add(d)
		}
	}
	for _, k := range records {
		// Documents about a record may be held by anyone: the person's directives decide,
		// even for the record's owner (who reads its own documents by id).
		d, err := g.RecordPerson(st, k)
		if err != nil {
			return nil, nil, nil, err
		}
		if d.Disclose {
			keptRecords = append(keptRecords, k)
			add(d)
		}
	}
	if len(keptRecords)+len(keptEUIDs) == 0 && len(records)+len(euids) > 0 {
		keptRecords = []string{DeniedScope}
	}
	slices.Sort(withhold)
	return keptRecords, keptEUIDs, withhold, nil
}

// Document decides for one registered document: its holder sees it; anyone else if the
// patient may be disclosed and the document carries no withheld label.
func (g *Guard) Document(st State, d search.Document) (bool, error) {
	if g != nil && d.Holder == g.access.Participant {
		return true, nil
	}
	// As in a search: the person's directives decide, even for the record's owner, who
	// does not hold a document another participant registered.
	dec, err := g.RecordPerson(st, d.PatientRecord)
	if err != nil || !dec.Disclose {
		return false, err
	}
	var labels []string
	for _, c := range d.SecurityLabels {
		labels = append(labels, c.Token(), c.Code)
	}
	return !dec.Withheld(labels), nil
}

// BrokeGlass lists the persons the request disclosed only because of break-the-glass.
func (g *Guard) BrokeGlass() []string {
	if g == nil {
		return nil
	}
	return g.brokeGlass
}

// Denied counts the patients the request withheld.
func (g *Guard) Denied() int {
	if g == nil {
		return 0
	}
	return g.denied
}
