package command

import (
	"fmt"
	"time"

	"github.com/rls-hie/rls/raft/model"
	"github.com/rls-hie/rls/search"
)

// Document dates: a document is not older than MinDocumentYear nor created after the time
// its registration was stamped (one day of slack for time zones ahead of UTC).
const MinDocumentYear = 1900

var minDocumentDate = time.Date(MinDocumentYear, 1, 1, 0, 0, 0, 0, time.UTC)

// CheckDocumentLimits holds a document's fields to the limits; now is the stamped time of
// the command. Field names are the document's JSON names.
func CheckDocumentLimits(d *search.Document, now time.Time) error {
	if err := model.CheckID("id", d.ID); err != nil {
		return err
	}
	if !d.MasterIdentifier.IsZero() {
		if err := model.CheckSystem("master_identifier.system", d.MasterIdentifier.System); err != nil {
			return err
		}
		if err := model.CheckText("master_identifier.value", d.MasterIdentifier.Value, model.MaxIdentifierValueLength); err != nil {
			return err
		}
	}
	if err := model.CheckRecordKey("patient_record", d.PatientRecord); err != nil {
		return err
	}
	if d.PersonEUID != "" {
		if err := model.CheckID("person_euid", d.PersonEUID); err != nil {
			return err
		}
	}
	if err := model.CheckID("holder", d.Holder); err != nil {
		return err
	}
	for _, c := range []struct {
		field string
		code  search.Code
	}{{"type", d.Type}, {"format", d.Format}, {"facility_type", d.FacilityType}, {"practice_setting", d.PracticeSetting}} {
		if err := checkCode(c.field, c.code); err != nil {
			return err
		}
	}
	for _, l := range []struct {
		field string
		codes []search.Code
	}{{"category", d.Category}, {"events", d.Events}, {"security_labels", d.SecurityLabels}} {
		if err := model.CheckCount(l.field, len(l.codes), model.MaxListLength); err != nil {
			return err
		}
		for i, c := range l.codes {
			if err := checkCode(fmt.Sprintf("%s[%d]", l.field, i), c); err != nil {
				return err
			}
		}
	}
	if err := model.CheckCount("authors", len(d.Authors), model.MaxListLength); err != nil {
		return err
	}
	for i, a := range d.Authors {
		if err := model.CheckCount(fmt.Sprintf("authors[%d].given", i), len(a.Given), model.MaxNamePartCount); err != nil {
			return err
		}
		for j, g := range a.Given {
			if err := model.CheckText(fmt.Sprintf("authors[%d].given[%d]", i, j), g, model.MaxNameLength); err != nil {
				return err
			}
		}
		for _, f := range []struct {
			name, value string
			max         int
		}{{"family", a.Family, model.MaxDisplayLength}, {"institution", a.Institution, model.MaxDisplayLength}, {"institution_id", a.InstitutionID, model.MaxRecordKeyLength}} {
			if err := model.CheckText(fmt.Sprintf("authors[%d].%s", i, f.name), f.value, f.max); err != nil {
				return err
			}
		}
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"title", d.Title, model.MaxDisplayLength}, {"mime_type", d.MIMEType, model.MaxCodeLength},
		{"hash", d.Hash, model.MaxCodeLength}, {"language", d.Language, model.MaxCodeLength},
		{"repository_id", d.RepositoryID, model.MaxIdentifierValueLength}, {"url", d.URL, model.MaxURLLength},
	} {
		if err := model.CheckText(f.name, f.value, f.max); err != nil {
			return err
		}
	}
	if err := model.CheckFreeText("description", d.Description, model.MaxTextLength); err != nil {
		return err
	}
	if err := model.CheckCount("relates_to", len(d.RelatesTo), model.MaxListLength); err != nil {
		return err
	}
	for i, r := range d.RelatesTo {
		if err := model.CheckText(fmt.Sprintf("relates_to[%d].code", i), r.Code, model.MaxCodeLength); err != nil {
			return err
		}
		if err := model.CheckID(fmt.Sprintf("relates_to[%d].target", i), r.Target); err != nil {
			return err
		}
	}
	if err := model.CheckCount("related", len(d.Related), model.MaxListLength); err != nil {
		return err
	}
	for i, r := range d.Related {
		if err := model.CheckText(fmt.Sprintf("related[%d].reference", i), r.Reference, model.MaxURLLength); err != nil {
			return err
		}
		if !r.Identifier.IsZero() {
			if err := model.CheckSystem(fmt.Sprintf("related[%d].identifier.system", i), r.Identifier.System); err != nil {
				return err
			}
			if err := model.CheckText(fmt.Sprintf("related[%d].identifier.value", i), r.Identifier.Value, model.MaxIdentifierValueLength); err != nil {
				return err
			}
		}
	}
	if !d.Created.IsZero() && (d.Created.Before(minDocumentDate) || d.Created.After(now.Add(24*time.Hour))) {
		return &model.FieldError{Field: "created", Reason: fmt.Sprintf("must lie between %d and the time of registration", MinDocumentYear)}
	}
	for _, b := range []struct {
		name string
		t    time.Time
	}{{"service_period.start", d.ServicePeriod.Start}, {"service_period.end", d.ServicePeriod.End}} {
		if !b.t.IsZero() && b.t.Before(minDocumentDate) {
			return &model.FieldError{Field: b.name, Reason: fmt.Sprintf("is before %d", MinDocumentYear)}
		}
	}
	return nil
}

func checkCode(field string, c search.Code) error {
	if c.IsZero() {
		return nil
	}
	if err := model.CheckSystem(field+".system", c.System); err != nil {
		return err
	}
	if err := model.CheckText(field+".code", c.Code, model.MaxCodeLength); err != nil {
		return err
	}
	return model.CheckText(field+".display", c.Display, model.MaxDisplayLength)
}
