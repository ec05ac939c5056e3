package audit

// Action describes an audited operation as FHIR AuditEvent codes it: the subtype
// (a FHIR restful interaction, or an operation) and the action code (C create, R read,
// U update, D delete, E execute: searches and operations are E).
type Action struct {
	Subtype string
	Code    string
}

// Actions lists every audited action by the name routes give it. A route names an action
// that is not here only by mistake: the server refuses to start (see locator.New).
var Actions = map[string]Action{
	"patient-create":    {"create", "C"},
	"patient-update":    {"update", "U"},
	"patient-read":      {"read", "R"},
	"patient-search":    {"search-type", "E"},
	"patient-match":     {"operation", "E"},
	"patient-pix":       {"operation", "E"},
	"patient-batch":     {"batch", "C"},
	"person-read":       {"read", "R"},
	"document-create":   {"create", "C"},
	"document-update":   {"update", "U"},
	"document-read":     {"read", "R"},
	"document-search":   {"search-type", "E"},
	"document-batch":    {"batch", "C"},
	"document-provide":  {"transaction", "C"},
	"list-read":         {"read", "R"},
	"list-search":       {"search-type", "E"},
	"locate":            {"operation", "E"},
	"mpi-explain":       {"operation", "E"},
	"review-list":       {"search-type", "E"},
	"review-read":       {"read", "R"},
	"review-resolve":    {"update", "U"},
	"steward-link":      {"update", "U"},
	"steward-unlink":    {"update", "U"},
	"steward-merge":     {"update", "U"},
	"steward-unmerge":   {"update", "U"},
	"person-history":    {"history-instance", "R"},
	"audit-search":      {"search-type", "E"},
	"snapshot-download": {"read", "R"},
	"snapshot-restore":  {"update", "U"},
	"mpi-train":         {"operation", "E"},
	"mpi-rematch":       {"operation", "E"},
	"consent-create":    {"create", "C"},
	"consent-update":    {"update", "U"},
	"consent-read":      {"read", "R"},
	"consent-search":    {"search-type", "E"},
	// A web console session opened (POST /ui/session): who signed in, as whom, and who
	// was refused.
	"console-sign-in": {"create", "C"},
	// A PIX update notification (ITI-10) pushed to a participant's MLLP endpoint.
	"pix-notify": {"operation", "E"},
	// Subscriptions: their changes, and each notification delivered (it discloses as a
	// query answer does).
	"subscription-create": {"create", "C"},
	"subscription-update": {"update", "U"},
	"subscription-notify": {"operation", "E"},
}
