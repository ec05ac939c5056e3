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
		p := map[string]any{"name": name, "type": typ}
		if doc != "" { // R4 strings are never empty
			p["documentation"] = doc
		}
		return p
	}
	interactions := func(codes ...string) []any {
		var out []any
		for _, c := range codes {
			out = append(out, map[string]any{"code": c})
		}
		return out
	}
	software := map[string]any{"name": "rls"}
	if s.opts.Version != "" {
		software["version"] = s.opts.Version
	}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         time.Now().UTC().Format("2006-01-02"),
		"kind":         "instance",
		"software":     software,
		"implementation": map[string]any{
			"description": "rls record locator service: master patient index (PIXm, PDQm, $match) and participant directory",
		},
		"fhirVersion": "4.0.1",
		// JSON only: an XML _format or Accept is 406, an XML body 415.
		"format": []string{"application/fhir+json", "json"},
		"instantiates": []string{
			"https://profiles.ihe.net/ITI/PIXm/CapabilityStatement/IHE.PIXm.Manager",
			"https://profiles.ihe.net/ITI/PDQm/CapabilityStatement/IHE.PDQm.Supplier",
			"https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
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
				"Each participant is rate limited per node (429 with Retry-After). Errors are OperationOutcome resources. " +
				"Every resource received is validated against FHIR R4 (4.0.1): any R4 element is accepted (meta.profile, tag, security and source, Identifier.type, extensions and primitive extensions are kept on Patient, DocumentReference meta and identifiers); elements R4 does not define, values not in their R4 format and codes outside a required binding are 400 with the FHIRPath of the element. " +
				"FHIR is served as JSON only (application/fhir+json): _format=xml or an Accept without JSON is 406, a body that is not JSON (XML, text/plain) 415. " +
				"A stale If-Match is 412. Bundle links, entry.fullUrl and Location are absolute URLs (under the configured public base URL, else the host the request came to). " +
				"vread (_history/{vid}) answers the current version; earlier versions are not kept (404). Not supported: history, delete, patch, batch/transaction (MHD ITI-65), List (ITI-66), _include, XML.",
			"security": map[string]any{"description": "Bearer tokens issued per participant (revocable with $revoke-token, rotated with $rotate-token; a disabled participant or revoked token gets 401), or mutual TLS: a client certificate from the exchange's CA maps to the participant in its URI SAN urn:rls:participant:ID, else to its subject CN. Admin role for Organization, Consent and AuditEvent administration. Consent directives are enforced on every query of patient data by one policy point."},
			"resource": []any{
				map[string]any{
					"type":              "Patient",
					"documentation":     "A source record: one participant's patient, keyed by the identifier in that participant's assigning authority. The id is derived from that identifier; re-sending a known identifier updates the record and re-decides its link. Responses carry the person's EUID as an identifier in " + "https://rls-hie.github.io/fhir/sid/euid" + " and, on writes, the match-decision extension. A Patient.link of type replaced-by naming another record of the same system (PIXm feed, ITI-104) merges the replaced record's person into the surviving record's person.",
					"interaction":       interactions("create", "update", "read", "vread", "search-type"),
					"versioning":        "versioned-update",
					"conditionalUpdate": true,
					"updateCreate":      false,
					"searchParam": []any{
						param("family", "string", "Forgiving: prefix of the normalised name or the same Double Metaphone code; :exact matches the normalised name only"),
						param("given", "string", "Forgiving as family, and nicknames match their formal names (Bill finds William); :exact supported"),
						param("birthdate", "date", "Prefixes eq, ge, gt, le, lt; year, month or day precision; repeatable to form a range"),
						param("gender", "token", "male, female, other, unknown; with another criterion"),
						param("active", "token", "true or false; narrows other criteria (a record that does not say active=false counts as active)"),
						param("address", "string", "Starts with, case- and accent-insensitive, on any part of any address; narrows other criteria"),
						param("address-state", "string", "Starts with, case-insensitive; narrows other criteria"),
						param("mothersMaidenName", "string", "Starts with, on the patient-mothersMaidenName extension; narrows other criteria"),
						param("address-postalcode", "string", "Exact, on the 5-digit normalised code"),
						param("address-city", "string", "Exact, case- and accent-insensitive"),
						param("telecom", "token", "phone (digits compared) or email; system|value"),
						param("email", "token", "Exact"),
						param("identifier", "token", "system|value, or value in any system"),
						param("_id", "token", "Patient id"),
						param("_count", "number", "Page size, at most 200 (default 20); paging through the next link"),
						param("_offset", "number", "Start of the page (the next link sets it)"),
					},
					"operation": []any{
						map[string]any{"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
							"documentation": "Returns Patient resources ranked by score: each the golden view of one person (id the EUID, readable at Patient/{euid}; link seealso to each source record; extension " + fhir.PersonExtensionURL + " referencing the Person), each with search.score, the match-grade extension and one " + "https://rls-hie.github.io/fhir/StructureDefinition/match-field" + " extension per field (agreement level and weight). Parameters: resource, onlyCertainMatches, count (at most 100)."},
						map[string]any{"name": "ihe-pix", "definition": "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix",
							"documentation": "PIXm query (ITI-83): sourceIdentifier, targetSystem (repeatable). Unknown domain 400, unknown identifier 404, unknown target system 403."},
					},
				},
				map[string]any{
					"type":             "DocumentReference",
					"supportedProfile": []string{"https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"},
					"documentation":    "Document metadata and where the document lives (IHE MHD); rls never stores content (attachment.data is refused). The id derives from masterIdentifier; the registering participant is the holder; relatesTo replaces supersedes the older document.",
					"interaction":      interactions("create", "update", "read", "vread", "search-type"),
					"searchParam": []any{
						param("subject", "reference", "As patient"),
						param("patient", "reference", "Patient/{id}, {id}, or Person/{euid}; :mdm widens a Patient to every record of its person"),
						param("patient.identifier", "token", "system|value of the patient's record; :mdm supported"),
						param("status", "token", "current, superseded, entered-in-error"),
						param("date", "date", "The document's creation: attachment.creation, else DocumentReference.date (rls keeps one time); prefixes eq ne gt lt ge le sa eb"),
						param("creation", "date", "MHD: attachment.creation (else DocumentReference.date), as date"),
						param("period", "date", "Service period"),
						param("type", "token", ""), param("category", "token", ""), param("facility", "token", ""),
						param("setting", "token", ""), param("event", "token", ""), param("format", "token", ""),
						param("security-label", "token", ":not supported"), param("identifier", "token", "Master identifier"),
						param("author.given", "string", "Starts with, case- and accent-insensitive"), param("author.family", "string", ""),
						param("related", "reference", "context.related as sent (Encounter/123); :identifier matches its identifier, system|value or value"),
						param("_text", "string", "Title and description: words, \"phrases\", -excluded"),
						param("_sort", "token", "date or -date (default)"), param("_count", "number", "At most 1000; paging through the next link"),
						param("_summary", "token", "count"),
						param("_cursor", "string", "Continues a search (the next link sets it)"),
					},
					"searchInclude": []string{"DocumentReference:subject", "DocumentReference:patient"},
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
						"Participants record directives for patients they hold a record of and see the directives they recorded; the admin sees all. " +
						"As R4 requires, a Consent carries scope, category, a policy or policyRule (ppc-1) and a role on every actor; rls keeps and serves back the scope, category, policy, policyRule and roles sent.",
					"interaction": interactions("create", "update", "read", "vread", "search-type"),
					"versioning":  "versioned-update",
					"searchParam": []any{
						param("patient", "reference", "Patient/{id} or Person/{euid}: the directives of every record of that person"),
						param("_offset", "number", "Start of the page"),
						param("status", "token", "active or inactive"),
						param("_count", "number", "At most 1000"),
					},
				},
				map[string]any{
					"type":          "Organization",
					"documentation": "A participant. Create uses the id given in the body (the participant id) and returns the participant's token once in the participant-token extension. Operations $disable, $enable, $rotate-token and $revoke-token. Allowed purposes of use are listed in the purpose-of-use extension (one valueCode each; none sent means the default: TREAT for participants, every purpose for admins).",
					"interaction":   interactions("create", "update", "read", "vread", "search-type"),
					"versioning":    "versioned-update",
					"searchParam": []any{
						param("_id", "token", "Participant id"), param("name", "string", "Case-insensitive substring"),
						param("identifier", "token", "Assigning authority URI"), param("type", "token", "hospital, practice, lab, hie"),
						param("active", "token", "true or false"),
						param("_count", "number", "Page size"), param("_offset", "number", "Start of the page (the next link sets it)"),
					},
					"operation": []any{
						map[string]any{"name": "disable", "definition": fhir.Base + "/OperationDefinition/Organization-disable", "documentation": "POST Organization/{id}/$disable: the participant's token stops working on every node (admin)"},
						map[string]any{"name": "enable", "definition": fhir.Base + "/OperationDefinition/Organization-enable", "documentation": "POST Organization/{id}/$enable (admin)"},
						map[string]any{"name": "rotate-token", "definition": fhir.Base + "/OperationDefinition/Organization-rotate-token", "documentation": "POST Organization/{id}/$rotate-token: a new token, returned once in the participant-token extension; the old one stops working (admin)"},
						map[string]any{"name": "revoke-token", "definition": fhir.Base + "/OperationDefinition/Organization-revoke-token", "documentation": "POST Organization/{id}/$revoke-token: removes the token (admin)"},
					},
				},
				map[string]any{
					"type":             "List",
					"supportedProfile": []string{"https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Minimal.SubmissionSet"},
					"documentation":    "MHD SubmissionSets registered by ITI-65 (POST /fhir with a transaction Bundle); the id derives from the SubmissionSet's uniqueId (identifier with use official); items reference the registered DocumentReferences.",
					"interaction":      interactions("read", "vread", "search-type"),
					"searchParam": []any{
						param("patient", "reference", "Patient/{id} or {id}, required; :mdm widens it to every record of the person"),
						param("subject", "reference", "As patient"),
						param("code", "token", "submissionset (or system|code)"),
						param("status", "token", "current"),
						param("identifier", "token", "system|value or value"),
						param("_count", "number", "At most 200"), param("_offset", "number", "Start of the page"),
					},
				},
				map[string]any{
					"type": "Endpoint",
					"documentation": "An MLLP endpoint of a participant (managingOrganization) that receives PIX update notifications (IHE ITI-10, ADT^A31) when a person's cross-references change: connectionType " +
						fhir.EndpointConnectionType + "|" + fhir.ConnectionTypeMLLP + ", address mllp://host:port or mllps://host:port, the identifier systems wanted in PID-3 as " + fhir.PIXDomainURL +
						" extensions (valueUri; none: every domain). Status active, suspended or off. A participant manages its own endpoints; the admin anyone's.",
					"interaction": interactions("create", "update", "read", "search-type"),
					"versioning":  "versioned-update",
					"searchParam": []any{param("organization", "reference", "The participant (admin only)")},
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
			"interaction": []any{map[string]any{"code": "transaction", "documentation": "MHD ITI-65 Provide Document Bundle only: one SubmissionSet List and the DocumentReferences it lists (no Binary: rls keeps no content), registered all or nothing; answered with a transaction-response. batch is not supported."}},
		}},
	}
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request, rq *request) error {
	return writeFHIR(w, http.StatusOK, s.capabilityStatement())
}
