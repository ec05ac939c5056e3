package command

import (
	"fmt"
	"time"

	"github.com/rls-hie/rls/raft/model"
)

// The checks below hold a command's payload to model's limits. The API runs them (or the
// same limits element by element) before it proposes; the FSM runs them again before a
// command writes anything, on entries whose Header.Limits says they were proposed under
// those rules. Field names are the payload's (JSON) names.

// MaxMatchConfigBytes bounds a proposed match configuration (it is stored whole).
const MaxMatchConfigBytes = 1 << 20

// MaxClusterKeyBytes bounds the cluster key an audit batch may carry.
const MaxClusterKeyBytes = 64

// fieldNames names the fields of a payload in its errors: prefix + name, and name[i] for
// an item of a list. Nearly every payload passes its checks, and naming each field as the
// checks went (a string per field, an fmt.Sprintf per list item) cost a dozen allocations
// per record, on every node. So a payload is first checked with names off, which costs
// nothing, and only one that fails is checked again with names on: the checks depend on
// the values alone, so the second pass fails at the same field.
type fieldNames struct {
	prefix string
	on     bool
}

// namesOff is the first pass's fieldNames: every field goes by its bare name.
var namesOff = fieldNames{}

func namesOn(prefix string) fieldNames { return fieldNames{prefix: prefix, on: true} }

func (n fieldNames) field(name string) string {
	if !n.on {
		return name
	}
	return n.prefix + name
}

func (n fieldNames) item(name string, i int) string {
	if !n.on {
		return name
	}
	return fmt.Sprintf("%s%s[%d]", n.prefix, name, i)
}

// within names the fields of a nested object, name being the object's field with its
// separator ("record.").
func (n fieldNames) within(name string) fieldNames {
	if !n.on {
		return n
	}
	return namesOn(n.prefix + name)
}

// Check holds a record to the limits. now is the time stamped on the command (the FSM reads
// no clock), against which a birth date must not be in the future. prefix names the record
// in errors.
func (r *PatientRecord) Check(prefix string, now time.Time) error {
	if r.check(namesOff, now) == nil {
		return nil
	}
	return r.check(namesOn(prefix), now)
}

func (r *PatientRecord) check(n fieldNames, now time.Time) error {
	if err := model.CheckSystem(n.field("system"), r.System); err != nil {
		return err
	}
	if err := model.CheckText(n.field("value"), r.Value, model.MaxIdentifierValueLength); err != nil {
		return err
	}
	if err := model.CheckCount(n.field("given"), len(r.Given), model.MaxNamePartCount); err != nil {
		return err
	}
	for i, g := range r.Given {
		if err := model.CheckText(n.item("given", i), g, model.MaxNameLength); err != nil {
			return err
		}
	}
	if err := model.CheckCount(n.field("address_lines"), len(r.AddressLines), model.MaxAddressLineCount); err != nil {
		return err
	}
	for i, l := range r.AddressLines {
		if err := model.CheckText(n.item("address_lines", i), l, model.MaxAddressLineLength); err != nil {
			return err
		}
	}
	if err := model.CheckCount(n.field("phones"), len(r.Phones), model.MaxTelecomCount); err != nil {
		return err
	}
	for i, p := range r.Phones {
		if err := model.CheckText(n.item("phones", i), p, model.MaxTelecomLength); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		name, value string
		max         int
	}{
		{"family", r.Family, model.MaxNameLength}, {"suffix", r.Suffix, model.MaxNameLength},
		{"sex", r.Sex, model.MaxCodeLength}, {"city", r.City, model.MaxCityLength},
		{"state", r.State, model.MaxStateLength}, {"postal_code", r.PostalCode, model.MaxPostalCodeLength},
		{"email", r.Email, model.MaxTelecomLength}, {"ssn", r.SSN, model.MaxSSNLength},
	} {
		if err := model.CheckText(n.field(c.name), c.value, c.max); err != nil {
			return err
		}
	}
	return model.CheckBirthDate(n.field("birth_date"), r.BirthDate, now)
}

// Check holds a registration batch to the limits.
func (c *PatientRegister) Check(now time.Time) error {
	if err := model.CheckCount("registrations", len(c.Registrations), model.MaxBatchEntries); err != nil {
		return err
	}
	for i := range c.Registrations {
		r := &c.Registrations[i]
		if r.check(namesOff, now) != nil {
			return r.check(namesOn(fmt.Sprintf("registrations[%d].", i)), now)
		}
	}
	return nil
}

// Check holds one registration to the limits; prefix names it in errors.
func (r *PatientRegistration) Check(prefix string, now time.Time) error {
	if r.check(namesOff, now) == nil {
		return nil
	}
	return r.check(namesOn(prefix), now)
}

func (r *PatientRegistration) check(n fieldNames, now time.Time) error {
	if err := r.Record.check(n.within("record."), now); err != nil {
		return err
	}
	if err := model.CheckID(n.field("new_euid"), r.NewEUID); err != nil {
		return err
	}
	if len(r.Prepared) > model.MaxResourceBytes {
		return &model.FieldError{Field: n.field("prepared"), Reason: fmt.Sprintf("is %d bytes; a prepared record may hold at most %d", len(r.Prepared), model.MaxResourceBytes)}
	}
	return checkResource(n.field("resource"), r.Resource)
}

func checkResource(field string, b []byte) error {
	if len(b) > model.MaxResourceBytes {
		return &model.FieldError{Field: field, Reason: fmt.Sprintf("is %d bytes; a resource may hold at most %d", len(b), model.MaxResourceBytes)}
	}
	return nil
}

// Check holds a document batch to the limits the command itself can see (its size); the
// documents' fields are checked by the FSM, which decodes them.
func (c *DocumentRegister) Check() error {
	if err := model.CheckCount("documents", len(c.Documents), model.MaxBatchEntries); err != nil {
		return err
	}
	for i, d := range c.Documents {
		if err := checkResource(fmt.Sprintf("documents[%d].document", i), d.Document); err != nil {
			return err
		}
		if err := checkResource(fmt.Sprintf("documents[%d].resource", i), d.Resource); err != nil {
			return err
		}
	}
	return nil
}

// Check holds a match configuration to its size limit.
func (c *MatchConfigSet) Check() error {
	if len(c.Config) > MaxMatchConfigBytes {
		return &model.FieldError{Field: "config", Reason: fmt.Sprintf("is %d bytes; at most %d", len(c.Config), MaxMatchConfigBytes)}
	}
	return nil
}

func checkReason(reason string) error {
	return model.CheckFreeText("reason", reason, model.MaxReasonLength)
}

// Check holds a steward link to the limits.
func (c *RecordLink) Check() error {
	if err := model.CheckRecordKey("record", c.Record); err != nil {
		return err
	}
	if err := model.CheckID("euid", c.EUID); err != nil {
		return err
	}
	return checkReason(c.Reason)
}

// Check holds a steward unlink to the limits.
func (c *RecordUnlink) Check() error {
	if err := model.CheckRecordKey("record", c.Record); err != nil {
		return err
	}
	if err := model.CheckID("new_euid", c.NewEUID); err != nil {
		return err
	}
	return checkReason(c.Reason)
}

// Check holds a merge to the limits.
func (c *PersonMerge) Check() error {
	if err := model.CheckID("from", c.From); err != nil {
		return err
	}
	if err := model.CheckID("into", c.Into); err != nil {
		return err
	}
	return checkReason(c.Reason)
}

// Check holds an unmerge to the limits.
func (c *PersonUnmerge) Check() error {
	if err := model.CheckID("euid", c.EUID); err != nil {
		return err
	}
	return checkReason(c.Reason)
}

// Check holds a review resolution to the limits.
func (c *ReviewResolve) Check() error {
	if err := model.CheckText("decision", c.Decision, model.MaxCodeLength); err != nil {
		return err
	}
	if c.EUID != "" {
		if err := model.CheckID("euid", c.EUID); err != nil {
			return err
		}
	}
	return checkReason(c.Reason)
}

// Check holds a consent directive to the limits.
func (c *ConsentSet) Check() error {
	m := &c.Consent
	if err := model.CheckID("consent.id", m.ID); err != nil {
		return err
	}
	if err := model.CheckCount("consent.records", len(m.Records), model.MaxConsentRecords); err != nil {
		return err
	}
	for i, k := range m.Records {
		if err := model.CheckRecordKey(fmt.Sprintf("consent.records[%d]", i), k); err != nil {
			return err
		}
	}
	if m.EUID != "" {
		if err := model.CheckID("consent.euid", m.EUID); err != nil {
			return err
		}
	}
	if err := model.CheckCount("consent.deny_participants", len(m.DenyParticipants), model.MaxListLength); err != nil {
		return err
	}
	for i, p := range m.DenyParticipants {
		if err := model.CheckID(fmt.Sprintf("consent.deny_participants[%d]", i), p); err != nil {
			return err
		}
	}
	if err := model.CheckCount("consent.withhold_labels", len(m.WithholdLabels), model.MaxListLength); err != nil {
		return err
	}
	for i, l := range m.WithholdLabels {
		if err := model.CheckText(fmt.Sprintf("consent.withhold_labels[%d]", i), l, model.MaxSystemLength+1+model.MaxCodeLength); err != nil {
			return err
		}
	}
	if err := checkResource("consent.terms", m.Terms); err != nil {
		return err
	}
	return model.CheckText("consent.status", m.Status, model.MaxCodeLength)
}

// Check holds an audit batch to the limits: the locator bounds every field it takes from a
// request before it proposes the batch.
func (c *AuditAppend) Check() error {
	if len(c.ClusterKey) > MaxClusterKeyBytes {
		return &model.FieldError{Field: "cluster_key", Reason: fmt.Sprintf("is %d bytes; at most %d", len(c.ClusterKey), MaxClusterKeyBytes)}
	}
	if err := model.CheckCount("entries", len(c.Entries), model.MaxBatchEntries*5); err != nil {
		return err
	}
	for i := range c.Entries {
		if err := CheckAuditEntry(fmt.Sprintf("entries[%d].", i), &c.Entries[i]); err != nil {
			return err
		}
	}
	return nil
}

// CheckAuditEntry holds one audit entry to the limits.
func CheckAuditEntry(prefix string, e *model.AuditEntry) error {
	f := func(name string) string { return prefix + name }
	if e.ID != "" {
		if err := model.CheckID(f("id"), e.ID); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		name, value string
		max         int
	}{
		{"node", e.Node, model.MaxIDLength}, {"source", e.Source, model.MaxSourceLength},
		{"request_id", e.RequestID, model.MaxRequestIDLength}, {"participant", e.Participant, model.MaxIDLength},
		{"on_behalf_of", e.OnBehalfOf, model.MaxOnBehalfOfLength}, {"purpose", e.Purpose, model.MaxPurposeLength},
		{"action", e.Action, model.MaxActionLength}, {"method", e.Method, model.MaxActionLength},
		{"path", e.Path, model.MaxAuditPathLength}, {"outcome", e.Outcome, model.MaxOutcomeLength},
	} {
		if err := model.CheckText(f(c.name), c.value, c.max); err != nil {
			return err
		}
	}
	// The break-the-glass reason and the query are what the caller sent (bounded, never
	// interpreted); the query of $match is a JSON body.
	if err := model.CheckFreeText(f("break_glass"), e.BreakGlass, model.MaxBreakGlassLength); err != nil {
		return err
	}
	if err := model.CheckFreeText(f("query"), e.Query, model.MaxAuditQueryLength); err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		ids  []string
	}{{"euids", e.EUIDs}, {"records", e.Records}} {
		if err := model.CheckCount(f(l.name), len(l.ids), model.MaxAuditListLength); err != nil {
			return err
		}
		for i, id := range l.ids {
			// The field is named only for an id that fails: an import batch's entry lists a
			// thousand, and every node checks them.
			if model.CheckID(l.name, id) != nil {
				return model.CheckID(fmt.Sprintf("%s%s[%d]", prefix, l.name, i), id)
			}
		}
	}
	return nil
}

// Check holds a participant command to the limits.
func (c *ParticipantAdd) Check() error { return c.Participant.Validate() }

// Check holds the bootstrap admin to the limits.
func (c *BootstrapAdmin) Check() error { return c.Participant.Validate() }

// Check holds a participant update to the limits.
func (c *ParticipantUpdate) Check() error { return c.Participant.Validate() }

// Check holds the command's id to the limits.
func (c *ParticipantSetActive) Check() error { return model.CheckID("id", c.ID) }

// Check holds a token rotation to the limits.
func (c *ParticipantRotateToken) Check() error {
	if err := model.CheckID("id", c.ID); err != nil {
		return err
	}
	p := model.Participant{TokenHash: c.TokenHash}
	if c.TokenHash == "" {
		return &model.FieldError{Field: "token_hash", Reason: "is required"}
	}
	return p.CheckTokenHash()
}

// Check holds the command's id to the limits.
func (c *ParticipantRevokeToken) Check() error { return model.CheckID("id", c.ID) }

// Check holds a catalog entry to the limits.
func (c *NodeRegister) Check() error { return c.Node.Validate() }

// Check holds the command's id to the limits.
func (c *NodeDeregister) Check() error { return model.CheckID("id", c.ID) }
