package fhir

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/raft/command"
	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/search"
)

// DocumentID derives a DocumentReference id from its master identifier (the XDS uniqueId),
// so that sending the same document again updates it instead of registering it twice.
func DocumentID(master search.Identifier) string {
	sum := sha256.Sum256([]byte(master.Token()))
	return "d" + hex.EncodeToString(sum[:16])
}

func codeOf(c Coding) search.Code {
	return search.Code{System: c.System, Code: c.Code, Display: c.Display}
}

func codesOf(cc []CodeableConcept) []search.Code {
	var out []search.Code
	for _, c := range cc {
		for _, cd := range c.Coding {
			out = append(out, codeOf(cd))
		}
	}
	return out
}

func firstCode(cc *CodeableConcept) search.Code {
	if cc == nil || len(cc.Coding) == 0 {
		return search.Code{}
	}
	return codeOf(cc.Coding[0])
}

// parseInstant reads a FHIR date or dateTime (the precision it has) between the year
// command.MinDocumentYear and latest: a date such as 0001-01-01 is a data-entry error, not a
// document (and would read as "no date" further down, where the zero time means absent).
func parseInstant(field, v string, latest time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if len(v) > 64 {
		return time.Time{}, Invalid(field, "%s is not a FHIR date or dateTime", field)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, v); err == nil {
			t = t.UTC()
			if t.Year() < command.MinDocumentYear || t.After(latest) {
				return time.Time{}, Invalid(field, "%s %s is not a plausible date for a document (from %d to %s)", field, v, command.MinDocumentYear, latest.Format("2006-01-02"))
			}
			return t, nil
		}
	}
	return time.Time{}, Invalid(field, "%s %q is not a FHIR date or dateTime", field, Clip(v))
}

// Document dates: the document's own date (its creation) cannot be later than the moment it
// is registered, give or take a day of time zones; a service period may be scheduled into
// the future, within the registry's range of dates.
var (
	lastServiceDate = time.Date(2199, 12, 31, 23, 59, 59, 0, time.UTC)
)

// checkDocumentReference holds the elements of a DocumentReference that reach the
// replicated state's keys and the document index to the limits of raft/model, naming the
// element at fault. (CheckBounds has already refused control and bidirectional-override
// characters anywhere in the resource.)
func checkDocumentReference(dr DocumentReference) error {
	check := func(err error) error {
		if err == nil {
			return nil
		}
		field, _ := model.FieldOf(err)
		return LimitError(field, err)
	}
	identifier := func(elem string, id *Identifier) error {
		if id == nil {
			return nil
		}
		if err := check(model.CheckSystem(elem+".system", id.System)); err != nil {
			return err
		}
		return check(model.CheckText(elem+".value", id.Value, model.MaxIdentifierValueLength))
	}
	coding := func(elem string, c Coding) error {
		if err := check(model.CheckSystem(elem+".system", c.System)); err != nil {
			return err
		}
		if err := check(model.CheckText(elem+".code", c.Code, model.MaxCodeLength)); err != nil {
			return err
		}
		return check(model.CheckText(elem+".display", c.Display, model.MaxDisplayLength))
	}
	concept := func(elem string, cc *CodeableConcept) error {
		if cc == nil {
			return nil
		}
		if err := check(model.CheckCount(elem+".coding", len(cc.Coding), model.MaxListLength)); err != nil {
			return err
		}
		for i, c := range cc.Coding {
			if err := coding(fmt.Sprintf("%s.coding[%d]", elem, i), c); err != nil {
				return err
			}
		}
		return check(model.CheckText(elem+".text", cc.Text, model.MaxDisplayLength))
	}
	concepts := func(elem string, ccs []CodeableConcept) error {
		if err := check(model.CheckCount(elem, len(ccs), model.MaxListLength)); err != nil {
			return err
		}
		for i := range ccs {
			if err := concept(fmt.Sprintf("%s[%d]", elem, i), &ccs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	reference := func(elem string, r *Reference) error {
		if r == nil {
			return nil
		}
		if err := check(model.CheckText(elem+".reference", r.Reference, model.MaxURLLength)); err != nil {
			return err
		}
		if err := check(model.CheckText(elem+".display", r.Display, model.MaxDisplayLength)); err != nil {
			return err
		}
		return identifier(elem+".identifier", r.Identifier)
	}
	if err := identifier("DocumentReference.masterIdentifier", dr.MasterIdentifier); err != nil {
		return err
	}
	if err := check(model.CheckCount("DocumentReference.identifier", len(dr.Identifier), model.MaxListLength)); err != nil {
		return err
	}
	for i := range dr.Identifier {
		if err := identifier(fmt.Sprintf("DocumentReference.identifier[%d]", i), &dr.Identifier[i]); err != nil {
			return err
		}
	}
	if err := reference("DocumentReference.subject", dr.Subject); err != nil {
		return err
	}
	if err := concept("DocumentReference.type", dr.Type); err != nil {
		return err
	}
	if err := concepts("DocumentReference.category", dr.Category); err != nil {
		return err
	}
	if err := concepts("DocumentReference.securityLabel", dr.SecurityLabel); err != nil {
		return err
	}
	if err := check(model.CheckFreeText("DocumentReference.description", dr.Description, model.MaxTextLength)); err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"author", len(dr.Author)}, {"relatesTo", len(dr.RelatesTo)}, {"content", len(dr.Content)}, {"contained", len(dr.Contained)}} {
		if err := check(model.CheckCount("DocumentReference."+l.name, l.n, model.MaxListLength)); err != nil {
			return err
		}
	}
	for i := range dr.Author {
		if err := reference(fmt.Sprintf("DocumentReference.author[%d]", i), &dr.Author[i]); err != nil {
			return err
		}
	}
	for i := range dr.RelatesTo {
		if err := reference(fmt.Sprintf("DocumentReference.relatesTo[%d].target", i), &dr.RelatesTo[i].Target); err != nil {
			return err
		}
	}
	for i, c := range dr.Content {
		elem := fmt.Sprintf("DocumentReference.content[%d]", i)
		a := c.Attachment
		for _, f := range []struct {
			name, value string
			max         int
		}{{"url", a.URL, model.MaxURLLength}, {"title", a.Title, model.MaxDisplayLength}, {"contentType", a.ContentType, model.MaxCodeLength},
			{"language", a.Language, model.MaxCodeLength}, {"hash", a.Hash, model.MaxCodeLength}, {"creation", a.Creation, model.MaxCodeLength}} {
			if err := check(model.CheckText(elem+".attachment."+f.name, f.value, f.max)); err != nil {
				return err
			}
		}
		if c.Format != nil {
			if err := coding(elem+".format", *c.Format); err != nil {
				return err
			}
		}
	}
	if ctx := dr.Context; ctx != nil {
		if err := concept("DocumentReference.context.facilityType", ctx.FacilityType); err != nil {
			return err
		}
		if err := concept("DocumentReference.context.practiceSetting", ctx.PracticeSetting); err != nil {
			return err
		}
		if err := concepts("DocumentReference.context.event", ctx.Event); err != nil {
			return err
		}
		if err := check(model.CheckCount("DocumentReference.context.related", len(ctx.Related), model.MaxListLength)); err != nil {
			return err
		}
		for i, rel := range ctx.Related {
			elem := fmt.Sprintf("DocumentReference.context.related[%d]", i)
			if err := check(model.CheckText(elem+".reference", rel.Reference, model.MaxURLLength)); err != nil {
				return err
			}
			if err := identifier(elem+".identifier", rel.Identifier); err != nil {
				return err
			}
		}
	}
	return nil
}

// DocumentOf maps a DocumentReference registered by holder at now to the registry's
// document, naming the element at fault in every error. subject resolves
// DocumentReference.subject to the record the document belongs to (and the person, when
// the subject is a Person), or refuses it.
func DocumentOf(dr DocumentReference, holder string, now time.Time, subject func(*Reference) (record, euid string, err error)) (search.Document, error) {
	var d search.Document
	if err := checkDocumentReference(dr); err != nil {
		return d, err
	}
	if dr.MasterIdentifier == nil || dr.MasterIdentifier.Value == "" {
		return d, Invalid("DocumentReference.masterIdentifier", "masterIdentifier (the document's unique id) is required")
	}
	d.MasterIdentifier = search.Identifier{System: dr.MasterIdentifier.System, Value: dr.MasterIdentifier.Value}
	d.ID = DocumentID(d.MasterIdentifier)
	if dr.ID != "" && dr.ID != d.ID {
		return d, Invalid("DocumentReference.id", "id %q is not the id rls derives from the masterIdentifier (%s)", dr.ID, d.ID)
	}
	d.Status = search.Status(dr.Status)
	if dr.Status == "" {
		return d, Invalid("DocumentReference.status", "status is required (current, superseded or entered-in-error)")
	}
	if !d.Status.Valid() {
		return d, Invalid("DocumentReference.status", "status %q must be current, superseded or entered-in-error", dr.Status)
	}
	var err error
	if d.PatientRecord, d.PersonEUID, err = subject(dr.Subject); err != nil {
		return d, err
	}
	if len(dr.Content) == 0 || dr.Content[0].Attachment.URL == "" {
		return d, Invalid("DocumentReference.content[0].attachment.url", "content.attachment.url is required: where the holder serves the document")
	}
	if err := model.ValidateHTTPURL("content.attachment.url", dr.Content[0].Attachment.URL); err != nil {
		return d, Invalid("DocumentReference.content[0].attachment.url", "%v", err)
	}
	for i, c := range dr.Content {
		if c.Attachment.Data != "" {
			return d, Invalid(fmt.Sprintf("DocumentReference.content[%d].attachment.data", i), "rls registers where documents are, never their content: send attachment.url, not data")
		}
	}
	a := dr.Content[0].Attachment
	d.URL, d.MIMEType, d.Hash, d.Language, d.Title = a.URL, a.ContentType, a.Hash, a.Language, a.Title
	if a.Size != nil {
		d.Size = *a.Size
	}
	if dr.Content[0].Format != nil {
		d.Format = codeOf(*dr.Content[0].Format)
	}
	// The creation time of the content is the document's date; DocumentReference.date
	// (when the reference was made) stands in when the attachment has none.
	latest := now.Add(24 * time.Hour)
	date, err := parseInstant("DocumentReference.date", dr.Date, latest)
	if err != nil {
		return d, err
	}
	if d.Created, err = parseInstant("DocumentReference.content[0].attachment.creation", a.Creation, latest); err != nil {
		return d, err
	}
	if d.Created.IsZero() {
		d.Created = date
	}
	d.Type = firstCode(dr.Type)
	d.Category = codesOf(dr.Category)
	d.SecurityLabels = codesOf(dr.SecurityLabel)
	d.Description = dr.Description
	if c := dr.Context; c != nil {
		d.FacilityType, d.PracticeSetting, d.Events = firstCode(c.FacilityType), firstCode(c.PracticeSetting), codesOf(c.Event)
		for _, rel := range c.Related {
			r := search.Related{Reference: rel.Reference}
			if id := rel.Identifier; id != nil {
				r.Identifier = search.Identifier{System: id.System, Value: id.Value}
			}
			if r.Reference != "" || !r.Identifier.IsZero() {
				d.Related = append(d.Related, r)
			}
		}
		if c.Period != nil {
			if d.ServicePeriod.Start, err = parseInstant("DocumentReference.context.period.start", c.Period.Start, lastServiceDate); err != nil {
				return d, err
			}
			if d.ServicePeriod.End, err = parseInstant("DocumentReference.context.period.end", c.Period.End, lastServiceDate); err != nil {
				return d, err
			}
		}
	}
	if d.Authors, err = documentAuthors(dr); err != nil {
		return d, err
	}
	for i, rel := range dr.RelatesTo {
		target, ok := strings.CutPrefix(rel.Target.Reference, "DocumentReference/")
		if !ok || target == "" {
			return d, Invalid(fmt.Sprintf("DocumentReference.relatesTo[%d].target", i), "target must reference DocumentReference/{id}")
		}
		switch rel.Code {
		case "replaces", "transforms", "signs", "appends":
		default:
			return d, Invalid(fmt.Sprintf("DocumentReference.relatesTo[%d].code", i), "relatesTo code %q must be replaces, transforms, signs or appends", rel.Code)
		}
		d.RelatesTo = append(d.RelatesTo, search.Relation{Code: rel.Code, Target: target})
	}
	d.Holder = holder
	if err := d.Validate(); err != nil {
		var de *search.DocumentError
		if errors.As(err, &de) {
			return d, Invalid("DocumentReference", "%s: %s", de.Field, de.Reason)
		}
		return d, Invalid("DocumentReference", "%v", err)
	}
	// The check the FSM repeats; the elements were checked one by one above.
	if err := command.CheckDocumentLimits(&d, now); err != nil {
		return d, LimitError("DocumentReference", err)
	}
	return d, nil
}

// documentAuthors reads the authors from contained Practitioner and Organization resources
// that DocumentReference.author references (#id), as MHD documents carry them.
func documentAuthors(dr DocumentReference) ([]search.Author, error) {
	contained := map[string]ContainedAuthor{}
	index := map[string]int{}
	for i, raw := range dr.Contained {
		var c ContainedAuthor
		if err := json.Unmarshal(raw, &c); err != nil || c.ID == "" {
			return nil, Invalid(fmt.Sprintf("DocumentReference.contained[%d]", i), "a contained resource needs a resourceType and an id")
		}
		contained[c.ID], index[c.ID] = c, i
	}
	checkName := func(elem, v string, max int) error {
		if err := model.CheckText(elem, v, max); err != nil {
			return LimitError(elem, err)
		}
		return nil
	}
	var out []search.Author
	for _, ref := range dr.Author {
		id, ok := strings.CutPrefix(ref.Reference, "#")
		c, found := contained[id]
		if !ok || !found {
			if ref.Display != "" {
				out = append(out, search.Author{Family: ref.Display})
			}
			continue
		}
		elem := fmt.Sprintf("DocumentReference.contained[%d].name", index[id])
		switch c.ResourceType {
		case "Practitioner":
			var names []HumanName
			if len(c.Name) > 0 && json.Unmarshal(c.Name, &names) == nil && len(names) > 0 {
				if err := checkName(elem+"[0].family", names[0].Family, model.MaxNameLength); err != nil {
					return nil, err
				}
				if len(names[0].Given) > model.MaxNamePartCount {
					return nil, LimitError(elem+"[0].given", model.CheckCount(elem+"[0].given", len(names[0].Given), model.MaxNamePartCount))
				}
				for j, g := range names[0].Given {
					if err := checkName(fmt.Sprintf("%s[0].given[%d]", elem, j), g, model.MaxNameLength); err != nil {
						return nil, err
					}
				}
				out = append(out, search.Author{Given: names[0].Given, Family: names[0].Family})
			}
		case "Organization":
			var name string
			if len(c.Name) > 0 && json.Unmarshal(c.Name, &name) == nil {
				if err := checkName(elem, name, model.MaxDisplayLength); err != nil {
					return nil, err
				}
				out = append(out, search.Author{Institution: name})
			}
		}
	}
	return out, nil
}

// StoredDocument renders a registered document: the resource as its holder sent it, with
// rls's id, meta (version, last update) and the document's current status.
func StoredDocument(resource []byte, d search.Document, version uint64, updated time.Time) (json.RawMessage, error) {
	var dr map[string]any
	if err := json.Unmarshal(resource, &dr); err != nil {
		return nil, fmt.Errorf("decode stored DocumentReference %s: %w", d.ID, err)
	}
	dr["resourceType"] = "DocumentReference"
	dr["id"] = d.ID
	var sent *Meta
	if raw, err := json.Marshal(dr["meta"]); err == nil && dr["meta"] != nil {
		sent = new(Meta)
		if err := json.Unmarshal(raw, sent); err != nil {
			return nil, fmt.Errorf("decode the meta of stored DocumentReference %s: %w", d.ID, err)
		}
	}
	dr["meta"] = Stamped(sent, strconv.FormatUint(version, 10), updated.UTC().Format(time.RFC3339Nano))
	dr["status"] = string(d.Status)
	return json.Marshal(dr)
}
