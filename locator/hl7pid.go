package locator

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/raft/state"
)

// The mapping between HL7 v2 patient segments (PID, MRG, QPD) and rls's FHIR Patient, as
// the HL7 v2-to-FHIR mapping guide has it where it says, and as a PIX manager's interface
// analyst expects where it does not. A Patient built from a PID goes through exactly the
// checks and the registration of a FHIR Patient (ITI-104's conditional update); what it
// refuses is reported back at the PID field it came from.

// mothersMaidenNameURL is the FHIR extension PID-6 maps to.
const mothersMaidenNameURL = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"

// euidNamespace is the namespace of rls's own identifier domain (the EUID) in CX-4.
const euidNamespace = "RLS"

// hl7Null is HL7's explicit null ("delete the value"): rls stores no value for it.
const hl7Null = `""`

// value is a component's value with HL7's null read as empty.
func value(c hl7.Component) string {
	v := strings.TrimSpace(c.String())
	if v == hl7Null {
		return ""
	}
	return v
}

// domainResolver turns a CX-4 assigning authority (HD: namespace & universal id & type)
// into an identifier system, or "" when it names no domain rls knows.
type domainResolver func(hd hl7.Component) string

var oidPattern = regexp.MustCompile(`^[0-2](\.(0|[1-9][0-9]*))+$`)

// hl7Domain resolves assigning authorities against the replicated state: a universal id
// of type ISO is urn:oid:OID, of type URI (or UUID) the URI; a namespace alone is the
// participant of that id (its identifier system), or itself when it is a URI. rls's own
// domain is the EUID system, namespace RLS.
func (s *Server) hl7Domain() domainResolver {
	return func(hd hl7.Component) string {
		ns, uid, typ := strings.TrimSpace(hd.Sub(1)), strings.TrimSpace(hd.Sub(2)), strings.ToUpper(strings.TrimSpace(hd.Sub(3)))
		if uid != "" {
			switch {
			case typ == "ISO" || (typ == "" && oidPattern.MatchString(uid)):
				uid = strings.TrimPrefix(uid, "urn:oid:")
				if !oidPattern.MatchString(uid) {
					return ""
				}
				return "urn:oid:" + uid
			case typ == "UUID":
				return "urn:uuid:" + strings.ToLower(strings.TrimPrefix(uid, "urn:uuid:"))
			case typ == "URI" || (typ == "" && strings.Contains(uid, ":")):
				return uid
			}
			return ""
		}
		if ns == "" {
			return ""
		}
		if ns == euidNamespace {
			return fhir.EUIDSystem
		}
		var system string
		_ = s.node.State().View(func(tx *state.Tx) error {
			if p, err := tx.Participant(ns); err == nil {
				system = p.IdentifierSystem
			}
			return nil
		})
		if system == "" && strings.Contains(ns, ":") {
			system = ns // a namespace that is itself a URI (urn:oid:…, https://…)
		}
		return system
	}
}

// cxDomain renders an identifier system as a CX-4 assigning authority: the namespace is the
// participant that owns the system (or RLS for the EUID), the universal id the OID (type
// ISO) or the URI (type URI).
func cxDomain(tx *state.Tx, system string) hl7.Component {
	ns := ""
	if system == fhir.EUIDSystem {
		ns = euidNamespace
	} else if tx != nil {
		if id, ok := tx.ParticipantIDBySystem(system); ok {
			ns = id
		}
	}
	if oid, ok := strings.CutPrefix(system, "urn:oid:"); ok {
		return hl7.Subs(ns, oid, "ISO")
	}
	return hl7.Subs(ns, system, "URI")
}

// provenance remembers where in the message each element of a Patient built from it came
// from, so that a refusal naming the element (Patient.name[1].family) is reported at the
// field (PID^1^5^2^1).
type provenance struct {
	paths []string
	locs  []hl7.Location
}

func (p *provenance) add(path string, loc hl7.Location) {
	p.paths = append(p.paths, path)
	p.locs = append(p.locs, loc)
}

// locate returns the location of the longest recorded path the expression starts with.
func (p *provenance) locate(expr string) (hl7.Location, bool) {
	best, at := -1, hl7.Location{}
	for i, path := range p.paths {
		if !strings.HasPrefix(expr, path) || len(path) <= best {
			continue
		}
		if rest := expr[len(path):]; rest != "" && rest[0] != '.' && rest[0] != '[' {
			continue
		}
		best, at = len(path), p.locs[i]
	}
	return at, best >= 0
}

// pidPatient is a Patient read from a PID segment.
type pidPatient struct {
	patient fhir.Patient
	prov    provenance
	// systems lists the resolved system of each PID-3 repetition ("" when unresolved).
	systems []string
}

// patientFromPID reads a PID into a FHIR Patient: PID-3 identifiers (CX, the assigning
// authority resolved to a system; SSNs by type SS or the SSA's OID), PID-5 names (XPN, with
// their types), PID-6 mother's maiden name, PID-7 birth date, PID-8 sex, PID-11 addresses,
// PID-13 and PID-14 phones and e-mail, PID-19 SSN, PID-29/30 death. Identifiers whose
// assigning authority resolves to no domain are left out (a message carries account and
// visit numbers of local namespaces); the caller requires the sender's own.
func patientFromPID(pid *hl7.Segment, seq int, resolve domainResolver) (pidPatient, *hl7.Error) {
	out := pidPatient{patient: fhir.Patient{ResourceType: "Patient"}}
	p := &out.patient
	at := func(positions ...int) hl7.Location {
		l := hl7.At("PID", positions...)
		l.Sequence = seq
		return l
	}
	active := true
	p.Active = &active
	out.prov.add("Patient", at())
	for i, cx := range pid.Field(3) {
		rep := i + 1
		v := value(cx.Comp(1))
		system := resolve(cx.Comp(4))
		if value(cx.Comp(5)) == "SS" || system == ssaOID {
			system = fhir.SSNSystem
		}
		out.systems = append(out.systems, system)
		if v == "" || system == "" {
			continue
		}
		path := fmt.Sprintf("Patient.identifier[%d]", len(p.Identifier))
		out.prov.add(path, at(3, rep))
		out.prov.add(path+".system", at(3, rep, 4))
		out.prov.add(path+".value", at(3, rep, 1))
		id := fhir.Identifier{System: system, Value: v}
		if value(cx.Comp(5)) == "MR" {
			id.Use = "usual"
		}
		p.Identifier = append(p.Identifier, id)
	}
	out.prov.add("Patient.identifier", at(3))
	if ssn := value(pid.Field(19).Rep(1).Comp(1)); ssn != "" {
		path := fmt.Sprintf("Patient.identifier[%d]", len(p.Identifier))
		out.prov.add(path, at(19))
		p.Identifier = append(p.Identifier, fhir.Identifier{System: fhir.SSNSystem, Value: ssn})
	}
	for i, xpn := range pid.Field(5) {
		n, ok := humanName(xpn)
		if !ok {
			continue
		}
		path := fmt.Sprintf("Patient.name[%d]", len(p.Name))
		out.prov.add(path, at(5, i+1))
		out.prov.add(path+".family", at(5, i+1, 1))
		out.prov.add(path+".given[0]", at(5, i+1, 2))
		out.prov.add(path+".given", at(5, i+1, 3))
		out.prov.add(path+".suffix", at(5, i+1, 4))
		out.prov.add(path+".prefix", at(5, i+1, 5))
		p.Name = append(p.Name, n)
	}
	if mmn := value(pid.Field(6).Rep(1).Comp(1)); mmn != "" {
		ext, _ := json.Marshal(fhir.Extension{URL: mothersMaidenNameURL, ValueString: mmn})
		out.prov.add("Patient.extension", at(6))
		p.Extension = append(p.Extension, ext)
	}
	if raw := value(pid.Field(7).Rep(1).Comp(1)); raw != "" {
		d, err := hl7Date(raw)
		if err != nil {
			return out, hl7.Errorf(at(7), hl7.CodeDataType, "PID-7 (date of birth) %q %v", fhir.Clip(raw), err)
		}
		p.BirthDate = d
	}
	out.prov.add("Patient.birthDate", at(7))
	if sex := value(pid.Field(8).Rep(1).Comp(1)); sex != "" {
		g, ok := administrativeSex[strings.ToUpper(sex)]
		if !ok {
			return out, hl7.Errorf(at(8), hl7.CodeTableValueNotFound, "PID-8 (administrative sex) %q is not in HL7 table 0001 (F, M, O, U, A, N)", fhir.Clip(sex))
		}
		p.Gender = g
	}
	out.prov.add("Patient.gender", at(8))
	for i, xad := range pid.Field(11) {
		a, ok := address(xad)
		if !ok {
			continue
		}
		path := fmt.Sprintf("Patient.address[%d]", len(p.Address))
		out.prov.add(path, at(11, i+1))
		out.prov.add(path+".line[0]", at(11, i+1, 1))
		out.prov.add(path+".line[1]", at(11, i+1, 2))
		out.prov.add(path+".city", at(11, i+1, 3))
		out.prov.add(path+".state", at(11, i+1, 4))
		out.prov.add(path+".postalCode", at(11, i+1, 5))
		out.prov.add(path+".country", at(11, i+1, 6))
		p.Address = append(p.Address, a)
	}
	for _, f := range []struct {
		field int
		use   string
	}{{13, "home"}, {14, "work"}} {
		for i, xtn := range pid.Field(f.field) {
			cp, ok := contactPoint(xtn, f.use)
			if !ok {
				continue
			}
			out.prov.add(fmt.Sprintf("Patient.telecom[%d]", len(p.Telecom)), at(f.field, i+1))
			p.Telecom = append(p.Telecom, cp)
		}
	}
	if raw := value(pid.Field(29).Rep(1).Comp(1)); raw != "" {
		if _, err := hl7Date(raw); err != nil {
			return out, hl7.Errorf(at(29), hl7.CodeDataType, "PID-29 (date of death) %q %v", fhir.Clip(raw), err)
		}
		p.DeceasedDateTime = hl7DateTime(raw)
		out.prov.add("Patient.deceasedDateTime", at(29))
	} else if ind := strings.ToUpper(value(pid.Field(30).Rep(1).Comp(1))); ind == "Y" || ind == "N" {
		dead := ind == "Y"
		p.DeceasedBoolean = &dead
		out.prov.add("Patient.deceasedBoolean", at(30))
	}
	return out, nil
}

// ssaOID is the US Social Security Administration's assigning authority.
const ssaOID = "urn:oid:2.16.840.1.113883.4.1"

// administrativeSex maps HL7 table 0001 to FHIR administrative gender.
var administrativeSex = map[string]string{"F": "female", "M": "male", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}

// sexCode maps FHIR administrative gender back to table 0001.
var sexCode = map[string]string{"female": "F", "male": "M", "other": "O", "unknown": "U"}

// nameUse maps HL7 table 0200 (name type) to FHIR name use, as the v2-to-FHIR mapping does.
var nameUse = map[string]string{"L": "official", "D": "usual", "A": "usual", "N": "nickname", "M": "maiden", "S": "anonymous", "NOUSE": "old", "BAD": "old", "T": "temp"}

// nameType maps FHIR name use back to table 0200.
var nameType = map[string]string{"official": "L", "usual": "D", "nickname": "N", "maiden": "M", "anonymous": "S", "old": "NOUSE", "temp": "T"}

// humanName reads an XPN: family (its surname) ^ given ^ further given names ^ suffix ^
// prefix ^ degree ^ name type.
func humanName(xpn hl7.Repetition) (fhir.HumanName, bool) {
	n := fhir.HumanName{Family: value(xpn.Comp(1))}
	if g := value(xpn.Comp(2)); g != "" {
		n.Given = append(n.Given, g)
	}
	n.Given = append(n.Given, strings.Fields(value(xpn.Comp(3)))...)
	if v := value(xpn.Comp(4)); v != "" {
		n.Suffix = []string{v}
	}
	if v := value(xpn.Comp(5)); v != "" {
		n.Prefix = []string{v}
	}
	n.Use = nameUse[strings.ToUpper(value(xpn.Comp(7)))]
	return n, n.Family != "" || len(n.Given) > 0
}

// addressUse maps HL7 table 0190 (address type) to FHIR address use.
var addressUse = map[string]string{"H": "home", "B": "work", "O": "work", "C": "temp", "BA": "old", "P": "home"}

// addressType maps FHIR address use back to table 0190.
var addressType = map[string]string{"home": "H", "work": "B", "temp": "C", "old": "BA"}

// address reads an XAD: street ^ other designation ^ city ^ state ^ postal code ^ country ^
// address type.
func address(xad hl7.Repetition) (fhir.Address, bool) {
	a := fhir.Address{City: value(xad.Comp(3)), State: value(xad.Comp(4)), PostalCode: value(xad.Comp(5)), Country: value(xad.Comp(6))}
	for _, l := range []string{value(xad.Comp(1)), value(xad.Comp(2))} {
		if l != "" {
			a.Line = append(a.Line, l)
		}
	}
	typ := strings.ToUpper(value(xad.Comp(7)))
	a.Use = addressUse[typ]
	if typ == "M" {
		a.Type = "postal"
	}
	return a, len(a.Line) > 0 || a.City != "" || a.State != "" || a.PostalCode != "" || a.Country != ""
}

// contactPoint reads an XTN: [old-style number] ^ use (PRN, WPN, NET…) ^ equipment (PH,
// CP, FX, Internet…) ^ e-mail ^ country ^ area ^ local number ^ extension.
func contactPoint(xtn hl7.Repetition, fieldUse string) (fhir.ContactPoint, bool) {
	use, equip := strings.ToUpper(value(xtn.Comp(2))), strings.ToUpper(value(xtn.Comp(3)))
	if use == "NET" || equip == "INTERNET" || equip == "X.400" {
		email := value(xtn.Comp(4))
		if email == "" {
			email = value(xtn.Comp(1))
		}
		return fhir.ContactPoint{System: "email", Value: email, Use: fieldUse}, email != ""
	}
	number := value(xtn.Comp(1))
	if number == "" {
		var b strings.Builder
		if c := value(xtn.Comp(5)); c != "" {
			b.WriteString("+" + c + " ")
		}
		if a := value(xtn.Comp(6)); a != "" {
			b.WriteString("(" + a + ") ")
		}
		if l := value(xtn.Comp(7)); len(l) == 7 && !strings.Contains(l, "-") {
			b.WriteString(l[:3] + "-" + l[3:])
		} else {
			b.WriteString(l)
		}
		if x := value(xtn.Comp(8)); x != "" {
			b.WriteString(" x" + x)
		}
		number = strings.TrimSpace(b.String())
	}
	cp := fhir.ContactPoint{System: "phone", Value: number, Use: fieldUse}
	switch equip {
	case "FX":
		cp.System = "fax"
	case "BP":
		cp.System = "pager"
	case "CP":
		cp.Use = "mobile"
	}
	switch use {
	case "WPN":
		cp.Use = "work"
	case "ORN", "VHN":
		cp.Use = "temp"
	}
	return cp, number != ""
}

// hl7Date reads the date part of an HL7 DT or DTM (YYYY[MM[DD[HHMM[SS[.S…]]]]][±ZZZZ]) as a
// FHIR date of the same precision. Calendar validity and plausibility are the Patient
// checks' to judge, so that both interfaces refuse the same dates.
func hl7Date(raw string) (string, error) {
	v, _ := cutZone(raw)
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("must be digits: YYYY, YYYYMM or YYYYMMDD")
		}
	}
	switch {
	case len(v) == 4:
		return v, nil
	case len(v) >= 8 && len(v) <= 14 && len(v)%2 == 0:
		if _, err := time.Parse("20060102", v[:8]); err != nil {
			return "", fmt.Errorf("is not a calendar date")
		}
		return v[:4] + "-" + v[4:6] + "-" + v[6:8], nil
	case len(v) == 6:
		return v[:4] + "-" + v[4:6], nil
	}
	return "", fmt.Errorf("must be YYYY, YYYYMM or YYYYMMDD (a time may follow)")
}

// cutZone splits a DTM's time zone (±ZZZZ, at its end) from it.
func cutZone(v string) (string, string) {
	if n := len(v); n > 5 && (v[n-5] == '+' || v[n-5] == '-') {
		return v[:n-5], v[n-5:]
	}
	return v, ""
}

// hl7DateTime reads a DTM into a FHIR dateTime (the date when there is no time).
func hl7DateTime(raw string) string {
	d, _ := hl7Date(raw)
	v, zone := cutZone(raw)
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	if len(v) < 12 {
		return d
	}
	t := d + "T" + v[8:10] + ":" + v[10:12] + ":"
	if len(v) >= 14 {
		t += v[12:14]
	} else {
		t += "00"
	}
	if len(zone) == 5 {
		return t + zone[:3] + ":" + zone[3:]
	}
	return t + "Z"
}

// fhirDateToHL7 writes a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD) as an HL7 DT.
func fhirDateToHL7(d string) string { return strings.ReplaceAll(d, "-", "") }

// pidFromPatient renders a Patient rls holds as a PID: the identifiers given (already
// chosen by the caller), and the demographics.
func pidFromPatient(setID int, ids hl7.Field, p fhir.Patient) *hl7.Segment {
	pid := hl7.NewSegment("PID")
	pid.SetText(1, strconv.Itoa(setID))
	pid.Set(3, ids)
	var names hl7.Field
	for _, n := range p.Name {
		given, more := "", ""
		if len(n.Given) > 0 {
			given, more = n.Given[0], strings.Join(n.Given[1:], " ")
		}
		names = append(names, hl7.Comps(n.Family, given, more, first(n.Suffix), first(n.Prefix), "", nameType[n.Use]))
	}
	pid.Set(5, names)
	for _, raw := range p.Extension {
		var ext fhir.Extension
		if json.Unmarshal(raw, &ext) == nil && ext.URL == mothersMaidenNameURL && ext.ValueString != "" {
			pid.Set(6, hl7.Reps(hl7.Comps(ext.ValueString)))
		}
	}
	pid.SetText(7, fhirDateToHL7(p.BirthDate))
	pid.SetText(8, sexCode[p.Gender])
	var addrs hl7.Field
	for _, a := range p.Address {
		line1, line2 := "", ""
		if len(a.Line) > 0 {
			line1 = a.Line[0]
		}
		if len(a.Line) > 1 {
			line2 = strings.Join(a.Line[1:], ", ")
		}
		typ := addressType[a.Use]
		if a.Type == "postal" && typ == "" {
			typ = "M"
		}
		addrs = append(addrs, hl7.Comps(line1, line2, a.City, a.State, a.PostalCode, a.Country, typ))
	}
	pid.Set(11, addrs)
	var home, work hl7.Field
	for _, t := range p.Telecom {
		var xtn hl7.Repetition
		switch t.System {
		case "email":
			xtn = hl7.Comps("", "NET", "Internet", t.Value)
		case "phone", "sms":
			equip := "PH"
			if t.Use == "mobile" {
				equip = "CP"
			}
			use := "PRN"
			if t.Use == "work" {
				use = "WPN"
			}
			xtn = hl7.Comps(t.Value, use, equip)
		case "fax":
			xtn = hl7.Comps(t.Value, "PRN", "FX")
		default:
			continue
		}
		if t.Use == "work" {
			work = append(work, xtn)
		} else {
			home = append(home, xtn)
		}
	}
	pid.Set(13, home)
	pid.Set(14, work)
	for _, id := range p.Identifier {
		if id.System == fhir.SSNSystem {
			pid.SetText(19, id.Value)
		}
	}
	if p.DeceasedDateTime != "" {
		pid.SetText(29, strings.NewReplacer("-", "", ":", "", "T", "").Replace(strings.TrimSuffix(p.DeceasedDateTime, "Z")))
		pid.SetText(30, "Y")
	} else if p.DeceasedBoolean != nil {
		pid.SetText(30, map[bool]string{true: "Y", false: "N"}[*p.DeceasedBoolean])
	}
	return pid
}

// cxOf renders one identifier as a CX: value ^^^ assigning authority.
func cxOf(tx *state.Tx, system, value string) hl7.Repetition {
	return hl7.Repetition{hl7.Component{value}, nil, nil, cxDomain(tx, system)}
}

// pseudoName is PID-5 of PIX answers and notifications (ITI-9, ITI-10): an empty first
// repetition and a second whose only component is name type S, so that no domain's name
// is presented as the person's.
var pseudoName = hl7.Reps(nil, hl7.Repetition{nil, nil, nil, nil, nil, nil, hl7.Component{"S"}})

// hl7ErrorOf reports an API error of the FHIR layer as an HL7 error: at the field the
// element came from (when prov knows it, else at fallback), with the table 0357 code that
// fits the FHIR issue.
func hl7ErrorOf(fe *fhir.Error, prov *provenance, fallback hl7.Location) *hl7.Error {
	loc := fallback
	if prov != nil {
		for _, expr := range fe.Issue.Expression {
			if l, ok := prov.locate(expr); ok {
				loc = l
				break
			}
		}
	}
	code := hl7.CodeInternal
	switch {
	case fe.Issue.Code == "too-long":
		code = hl7.CodeValueTooLong
	case fe.Issue.Code == "not-found":
		code = hl7.CodeUnknownKey
	case fe.Issue.Code == "required":
		code = hl7.CodeRequiredFieldMissing
	case fe.Issue.Code == "too-costly":
		code = hl7.CodeRequiredFieldMissing
	case fe.Issue.Code == "code-invalid":
		code = hl7.CodeTableValueNotFound
	case fe.Status == 403 && loc.Field == 3:
		// The PID carries no identifier in the sender's own domain.
		code = hl7.CodeRequiredFieldMissing
	case fe.Status == 409:
		code = hl7.CodeRecordLocked
	case fe.Status >= 400 && fe.Status < 500:
		code = hl7.CodeDataType
	}
	if name := fieldName(loc); name != "" {
		return hl7.Errorf(loc, code, "%s: %s", name, fe.Issue.Diagnostics)
	}
	return hl7.Errorf(loc, code, "%s", fe.Issue.Diagnostics)
}

// fieldName names a location as interface specifications do: PID-5.1, QPD-3 (the
// repetition is in ERR-2).
func fieldName(l hl7.Location) string {
	if l.Segment == "" || l.Field == 0 {
		return l.Segment
	}
	name := fmt.Sprintf("%s-%d", l.Segment, l.Field)
	if l.Comp > 0 {
		name += fmt.Sprintf(".%d", l.Comp)
	}
	return name
}

// first is a list's first value, or "".
func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
