package locator

import (
	"net/http"
	"time"

	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
)

// capabilityStatement lists exactly what this server supports, so that a client can check
// before it relies on something.
func (s *Server) capabilityStatement() map[string]any {
	param := func(name, typ, doc string) map[string]any {
		return map[string]any{"name": name, "type": typ, "documentation": doc}
	}
	interactions := func(codes ...string) []any {
		var out []any
		for _, c := range codes {
			out = append(out, map[string]any{"code": c})
		}
		return out
	}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         time.Now().UTC().Format("2006-01-02"),
		"kind":         "instance",
		"software":     map[string]any{"name": "rls", "version": s.opts.Version},
		"implementation": map[string]any{
			"description": "rls record locator service: master patient index (PIXm, PDQm, $match) and participant directory",
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json", "json"},
		"instantiates": []string{
			"https://profiles.ihe.net/ITI/PIXm/CapabilityStatement/IHE.PIXm.Manager",
			"https://profiles.ihe.net/ITI/PDQm/CapabilityStatement/IHE.PDQm.Supplier",
		},
		"rest": []any{map[string]any{
			"mode": "server",
			"documentation": "Every interaction except metadata needs a participant credential: Authorization: Bearer TOKEN, or a TLS client certificate naming the participant (when the node asks for one), or both naming the same participant. " +
				"Every query of patient data (Patient read and search, $match, $ihe-pix, Person read, DocumentReference read and search, /v1/locate) needs a purpose of use " +
				"in the X-Rls-Purpose-Of-Use header (or the purpose-of-use parameter): TREAT, ETREAT, PAYMENT, OPERATIONS, PUBLICHEALTH or REQUEST " +
				"(the HL7 v3 PurposeOfUse codes HPAYMT, HOPERAT, PUBHLTH, PATRQT are accepted), one the participant is allowed (Organization extension " + fhir.PurposeOfUseURL + "); " +
				"otherwise 400 (missing or unknown) or 403 (not allowed). Break-the-glass: purpose ETREAT with X-Rls-Break-Glass-Reason overrides a patient's opt-out for that request only, and is audited as such. " +
				"A patient the caller may not see is answered exactly as one that does not exist. " +
				"Every request that touches patient data leaves one hash-chained, replicated audit record (AuditEvent, admin only); an answer is not given unless its audit record is committed. " +
				"Reads take ?consistency=default|strong|stale; a node that cannot show it holds every acknowledged consent and token change answers 503 with Retry-After. " +
				"Each participant is rate limited per node (429 with Retry-After). Errors are OperationOutcome resources.",
			"security": map[string]any{"description": "Bearer tokens issued per participant (revocable with $revoke-token, rotated with $rotate-token; a disabled participant or revoked token gets 401), or mutual TLS: a client certificate from the exchange's CA maps to the participant in its URI SAN urn:rls:participant:ID, else to its subject CN. Admin role for Organization, Consent and AuditEvent administration. Consent directives are enforced on every query of patient data by one policy point."},
			"resource": []any{
				map[string]any{
					"type":              "Patient",
					"documentation":     "A source record: one participant's patient, keyed by the identifier in that participant's assigning authority. The id is derived from that identifier; re-sending a known identifier updates the record and re-decides its link. Responses carry the person's EUID as an identifier in " + "https://rls-hie.github.io/fhir/sid/euid" + " and, on writes, the match-decision extension. A Patient.link of type replaced-by naming another record of the same system (PIXm feed, ITI-104) merges the replaced record's person into the surviving record's person.",
					"interaction":       interactions("create", "update", "read", "search-type"),
					"versioning":        "versioned-update",
					"conditionalUpdate": true,
					"updateCreate":      false,
					"searchParam": []any{
						param("family", "string", "Forgiving: prefix of the normalised name or the same Double Metaphone code; :exact matches the normalised name only"),
						param("given", "string", "Forgiving as family, and nicknames match their formal names (Bill finds William); :exact supported"),
						param("birthdate", "date", "Prefixes eq, ge, gt, le, lt; year, month or day precision; repeatable to form a range"),
						param("gender", "token", "male, female, other, unknown"),
						param("address-postalcode", "string", "Exact, on the 5-digit normalised code"),
						param("address-city", "string", "Exact, case- and accent-insensitive"),
						param("telecom", "token", "phone (digits compared) or email; system|value"),
						param("email", "token", "Exact"),
						param("identifier", "token", "system|value, or value in any system"),
						param("_id", "token", "Patient id"),
						param("_count", "number", "Page size, at most 200 (default 20); paging through the next link"),
					},
					"operation": []any{
						map[string]any{"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
							"documentation": "Returns Person resources (enterprise identities) ranked by score, each with search.score, the match-grade extension and one " + "https://rls-hie.github.io/fhir/StructureDefinition/match-field" + " extension per field (agreement level and weight). Parameters: resource, onlyCertainMatches, count (at most 100)."},
						map[string]any{"name": "ihe-pix", "definition": "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix",
							"documentation": "PIXm query (ITI-83): sourceIdentifier, targetSystem (repeatable). Unknown domain 400, unknown identifier 404, unknown target system 403."},
					},
				},
				map[string]any{
					"type":          "DocumentReference",
					"documentation": "Document metadata and where the document lives (IHE MHD); rls never stores content (attachment.data is refused). The id derives from masterIdentifier; the registering participant is the holder; relatesTo replaces supersedes the older document.",
					"interaction":   interactions("create", "update", "read", "search-type"),
					"searchParam": []any{
						param("patient", "reference", "Patient/{id}, {id}, or Person/{euid}; :mdm widens a Patient to every record of its person"),
						param("patient.identifier", "token", "system|value of the patient's record; :mdm supported"),
						param("status", "token", "current, superseded, entered-in-error"),
						param("date", "date", "Creation date; prefixes eq ne gt lt ge le sa eb"),
						param("period", "date", "Service period"),
						param("type", "token", ""), param("category", "token", ""), param("facility", "token", ""),
						param("setting", "token", ""), param("event", "token", ""), param("format", "token", ""),
						param("security-label", "token", ":not supported"), param("identifier", "token", "Master identifier"),
						param("author.given", "string", "Starts with, case- and accent-insensitive"), param("author.family", "string", ""),
						param("_text", "string", "Title and description: words, \"phrases\", -excluded"),
						param("_sort", "token", "date or -date (default)"), param("_count", "number", "At most 1000; paging through the next link"),
						param("_summary", "token", "count"),
					},
				},
				map[string]any{
					"type":          "Person",
					"documentation": "The enterprise identity (EUID): links to every Patient of one individual and the golden view of their demographics.",
					"interaction":   interactions("read"),
				},
				map[string]any{
					"type": "Consent",
					"documentation": "A patient's privacy directive (scope patient-privacy). Consent.patient is Patient/{id} or Person/{euid}; provision type deny without actors or labels opts the patient out of the exchange; " +
						"deny provisions with actor Organization/{id} keep those participants from seeing the patient (break-the-glass does not override this); deny provisions with securityLabel codings withhold documents so labelled (for example 42 CFR Part 2). " +
						"Directives follow the patient through link, unlink and merge. Revoke with an update to status inactive. A change is acknowledged only once every node enforces it. " +
						"Participants record directives for patients they hold a record of and see the directives they recorded; the admin sees all.",
					"interaction": interactions("create", "update", "read", "search-type"),
					"versioning":  "versioned-update",
					"searchParam": []any{
						param("patient", "reference", "Patient/{id} or Person/{euid}: the directives of every record of that person"),
						param("status", "token", "active or inactive"),
						param("_count", "number", "At most 1000"),
					},
				},
				map[string]any{
					"type":          "Organization",
					"documentation": "A participant. Create uses the id given in the body (the participant id) and returns the participant's token once in the participant-token extension. Operations $disable, $enable, $rotate-token and $revoke-token. Allowed purposes of use are listed in the purpose-of-use extension (one valueCode each; none sent means the default: TREAT for participants, every purpose for admins).",
					"interaction":   interactions("create", "update", "read", "search-type"),
					"versioning":    "versioned-update",
					"searchParam": []any{
						param("_id", "token", "Participant id"), param("name", "string", "Case-insensitive substring"),
						param("identifier", "token", "Assigning authority URI"), param("type", "token", "hospital, practice, lab, hie"),
						param("active", "token", "true or false"),
					},
				},
				map[string]any{
					"type":             "Subscription",
					"supportedProfile": []string{fhir.ProfileBackportSubscription},
					"documentation": "Topic-based subscriptions (FHIR Subscriptions R5 Backport IG for R4, rest-hook channel, payload content empty, id-only or full-resource, application/fhir+json). criteria is one topic: " +
						model.TopicEncounter + " (another participant registered or updated a record of a person you hold a record of), " +
						model.TopicDocument + " (a DocumentReference was registered or replaced for such a person), " +
						model.TopicIdentity + " (a record you registered was linked, unlinked, merged or rematched: focus your Patient, additional-context the new then the previous Person and the person's other records). " +
						"A participant subscribes itself; the purpose of use (extension " + fhir.ExtPurposeOfUse + ") is applied with the patient's consent at delivery, as for a query. " +
						"Notifications are history Bundles with the SubscriptionStatus first, POSTed at least once and in order, signed in X-Rls-Signature (sha256= HMAC-SHA256 of the body under the secret returned once at creation, extension " + fhir.ExtSubscriptionSecret + "); " +
						"X-Rls-Event-Id and the Bundle id are stable per event, so a receiver can drop a redelivery. A failing endpoint puts the subscription in status error; it resumes where it stopped. Endpoints must be https. Operation $status.",
					"interaction": interactions("create", "update", "read", "search-type"),
					"versioning":  "versioned-update",
					"operation":   []any{map[string]any{"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"}},
					"searchParam": []any{param("status", "token", "active, error or off"), param("criteria", "uri", "The topic's canonical URL")},
				},
				auditEventCapability(param, interactions),
			},
		}},
	}
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request, rq *request) error {
	return writeFHIR(w, http.StatusOK, s.capabilityStatement())
}
