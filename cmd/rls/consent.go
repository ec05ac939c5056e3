package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/locator/policy"
	"github.com/rls-hie/rls/raft/model"
)

// PrivacyConfig tunes the policy point (the privacy block of the HCL config).
type PrivacyConfig struct {
	// FenceInterval is L of the security fence: a consent or token change waits at most this
	// long for an unresponsive node before it is acknowledged, and a follower serves only
	// within this long of learning the leader's commit index. At least twice the raft
	// heartbeat timeout (which bounds raft's own leader lease).
	FenceInterval string `hcl:"fence_interval,optional"`
	// RateLimit is each participant's sustained requests per second on one node (unset:
	// defaultRateLimit; negative: no limit); RateBurst the requests it may make at once
	// (unset: twice the rate). The admin is not limited: it runs bulk loads and the cluster.
	RateLimit float64 `hcl:"rate_limit,optional"`
	RateBurst int     `hcl:"rate_burst,optional"`
	// AddressRateLimit bounds each client address's requests per second before
	// authentication, AddressRateBurst its burst; AuthFailureRate and AuthFailureBurst the
	// failed authentications of one address (beyond them it is refused before
	// authentication until its allowance refills). Unset: the locator defaults; negative:
	// no limit.
	AddressRateLimit float64 `hcl:"address_rate_limit,optional"`
	AddressRateBurst int     `hcl:"address_rate_burst,optional"`
	AuthFailureRate  float64 `hcl:"auth_failure_rate,optional"`
	AuthFailureBurst int     `hcl:"auth_failure_burst,optional"`
}

// check validates the privacy settings against the raft timeouts they depend on.
func (p *PrivacyConfig) check(heartbeat string) error {
	fence, err := duration(p.FenceInterval)
	if err != nil {
		return fmt.Errorf("privacy.fence_interval: %w", err)
	}
	if fence == 0 {
		fence = locator.DefaultFenceInterval
	}
	hb, _ := duration(heartbeat)
	if hb == 0 {
		hb = time.Second // hashicorp/raft's default
	}
	// raft caps the leader lease at the heartbeat timeout: a deposed leader may believe it
	// leads that long, and must not outlast the fence.
	if fence < 2*hb {
		return fmt.Errorf("privacy.fence_interval %s must be at least twice raft.heartbeat_timeout (%s): a deposed leader may serve for up to the heartbeat timeout", fence, hb)
	}
	if p.RateBurst < 0 || p.AddressRateBurst < 0 || p.AuthFailureBurst < 0 {
		return errors.New("privacy.rate_burst, address_rate_burst and auth_failure_burst must not be negative")
	}
	return nil
}

func (p *PrivacyConfig) options(o *locator.Options) {
	o.FenceInterval = mustDuration(p.FenceInterval)
	o.RateLimit, o.RateBurst = p.RateLimit, p.RateBurst
	switch {
	case p.RateLimit == 0:
		o.RateLimit = defaultRateLimit
	case p.RateLimit < 0:
		o.RateLimit = 0
	}
	o.AddressRateLimit, o.AddressRateBurst = p.AddressRateLimit, p.AddressRateBurst
	o.AuthFailureRate, o.AuthFailureBurst = p.AuthFailureRate, p.AuthFailureBurst
}

// defaultRateLimit is generous for a clinical system's queries (a busy hospital's EHR
// makes tens per second) and stops a runaway or scraping client well before it loads a
// node.
const defaultRateLimit = 200

func purposesFlag(c *cli.Context) []string {
	var out []string
	for _, v := range c.StringSlice("purposes") {
		for _, one := range strings.Split(v, ",") {
			if one = strings.TrimSpace(one); one != "" {
				out = append(out, strings.ToUpper(one))
			}
		}
	}
	return out
}

// consentView is how the CLI shows a directive.
type consentView struct {
	ID               string   `json:"id"`
	Status           string   `json:"status"`
	Patient          string   `json:"patient"`
	OptOut           bool     `json:"opt_out"`
	DenyParticipants []string `json:"deny_participants,omitempty"`
	WithholdLabels   []string `json:"withhold_labels,omitempty"`
	RecordedBy       string   `json:"recorded_by,omitempty"`
	Version          string   `json:"version"`
	LastUpdated      string   `json:"last_updated"`
}

func consentViewOf(c fhir.Consent) consentView {
	v := consentView{ID: c.ID, Status: c.Status}
	if c.Patient != nil {
		v.Patient = c.Patient.Reference
	}
	if c.Meta != nil {
		v.Version, v.LastUpdated = c.Meta.VersionID, c.Meta.LastUpdated
	}
	for _, o := range c.Organization {
		v.RecordedBy = strings.TrimPrefix(o.Reference, "Organization/")
	}
	if c.Provision != nil {
		v.OptOut = c.Provision.Type == "deny" && len(c.Provision.Actor) == 0 && len(c.Provision.SecurityLabel) == 0
		for _, p := range append([]fhir.ConsentProvision{*c.Provision}, c.Provision.Provision...) {
			if p.Type != "deny" {
				continue
			}
			for _, a := range p.Actor {
				v.DenyParticipants = append(v.DenyParticipants, strings.TrimPrefix(a.Reference.Reference, "Organization/"))
			}
			for _, l := range p.SecurityLabel {
				if l.System != "" {
					v.WithholdLabels = append(v.WithholdLabels, l.System+"|"+l.Code)
				} else {
					v.WithholdLabels = append(v.WithholdLabels, l.Code)
				}
			}
		}
	}
	return v
}

// consentPatientRef reads -patient (Patient/ID or Person/EUID) or -identifier
// (system|value, whose Patient id rls derives from it).
func consentPatientRef(c *cli.Context) (string, error) {
	switch p, id := c.String("patient"), c.String("identifier"); {
	case p != "" && id != "":
		return "", errors.New("give -patient or -identifier, not both")
	case p != "":
		if !strings.HasPrefix(p, "Patient/") && !strings.HasPrefix(p, "Person/") {
			return "", fmt.Errorf("-patient %q must be Patient/ID or Person/EUID", p)
		}
		return p, nil
	case id != "":
		sys, val, ok := strings.Cut(id, "|")
		if !ok || sys == "" || val == "" {
			return "", fmt.Errorf("-identifier %q must be system|value", id)
		}
		return "Patient/" + model.PatientID(sys+"|"+val), nil
	}
	return "", errors.New("name the patient with -patient Patient/ID|Person/EUID or -identifier system|value")
}

func patientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "patient", Usage: "`Patient/ID` (one record) or Person/EUID (every record of the person)"},
		&cli.StringFlag{Name: "identifier", Usage: "the patient's record identifier `SYSTEM|VALUE`"},
	}
}

func consentCommand() *cli.Command {
	record := func(name, usage string, flags []cli.Flag, provision func(c *cli.Context) (fhir.ConsentProvision, error)) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage,
			Flags: append(append(clientFlags(), patientFlags()...), flags...),
			Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
				ref, err := consentPatientRef(c)
				if err != nil {
					return err
				}
				p, err := provision(c)
				if err != nil {
					return err
				}
				body := fhir.NewConsent(model.ConsentActive, ref, p)
				return sendConsent(c, cl, ctx, http.MethodPost, "/fhir/Consent", body, nil, name)
			}),
		}
	}
	return &cli.Command{
		Name:  "consent",
		Usage: "record, list and revoke patients' consent directives (returns once every node enforces the change)",
		Subcommands: []*cli.Command{
			record("opt-out", "the patient opts out of the exchange: no participant sees them, except by break-the-glass", nil,
				func(*cli.Context) (fhir.ConsentProvision, error) { return fhir.ConsentProvision{Type: "deny"}, nil }),
			record("deny", "named participants may not see the patient at all (break-the-glass does not override this)",
				[]cli.Flag{&cli.StringSliceFlag{Name: "participant", Required: true, Usage: "participant `ID` to deny (repeatable)"}},
				func(c *cli.Context) (fhir.ConsentProvision, error) {
					sub := fhir.ConsentProvision{Type: "deny"}
					for _, id := range c.StringSlice("participant") {
						sub.Actor = append(sub.Actor, fhir.ConsentActor{Reference: fhir.Reference{Reference: "Organization/" + id}})
					}
					return fhir.ConsentProvision{Type: "permit", Provision: []fhir.ConsentProvision{sub}}, nil
				}),
			record("withhold", "withhold the patient's documents carrying these security labels (e.g. 42 CFR Part 2: http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH)",
				[]cli.Flag{&cli.StringSliceFlag{Name: "label", Required: true, Usage: "security label `SYSTEM|CODE` or CODE (repeatable)"}},
				func(c *cli.Context) (fhir.ConsentProvision, error) {
					sub := fhir.ConsentProvision{Type: "deny"}
					for _, l := range c.StringSlice("label") {
						sys, code, ok := strings.Cut(l, "|")
						if !ok {
							sys, code = "", l
						}
						sub.SecurityLabel = append(sub.SecurityLabel, fhir.Coding{System: sys, Code: code})
					}
					return fhir.ConsentProvision{Type: "permit", Provision: []fhir.ConsentProvision{sub}}, nil
				}),
			{
				Name: "list", Usage: "list directives (of one patient with -patient or -identifier)",
				Flags:  append(append(clientFlags(), patientFlags()...), &cli.StringFlag{Name: "status", Usage: "active or inactive"}),
				Action: withClient(consentList),
			},
			{
				Name: "show", Usage: "show one directive", ArgsUsage: "ID", Flags: clientFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					return sendConsent(c, cl, ctx, http.MethodGet, "/fhir/Consent/"+url.PathEscape(id), nil, nil, "show consent "+id)
				}),
			},
			{
				Name: "revoke", Usage: "revoke a directive (status inactive)", ArgsUsage: "ID", Flags: clientFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					var cur fhir.Consent
					if err := cl.getJSON(ctx, "/fhir/Consent/"+url.PathEscape(id), &cur); err != nil {
						return fmt.Errorf("revoke consent %s: %w", id, err)
					}
					version := ""
					if cur.Meta != nil {
						version = cur.Meta.VersionID
					}
					cur.Status, cur.Meta = model.ConsentInactive, nil
					return sendConsent(c, cl, ctx, http.MethodPut, "/fhir/Consent/"+url.PathEscape(id), cur,
						map[string]string{"If-Match": fmt.Sprintf(`W/"%s"`, version)}, "revoke consent "+id)
				}),
			},
		},
	}
}

func sendConsent(c *cli.Context, cl *client, ctx context.Context, method, path string, body any, header map[string]string, what string) error {
	data, _, err := cl.do(ctx, method, path, body, header)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var cs fhir.Consent
	if err := json.Unmarshal(data, &cs); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", what, err)
	}
	v := consentViewOf(cs)
	return cl.render(c.App.Writer, v, func() error {
		return printFields(c.App.Writer, [][2]string{{"ID", v.ID}, {"Status", v.Status}, {"Patient", v.Patient},
			{"Opt-out", strconv.FormatBool(v.OptOut)}, {"Denied participants", strings.Join(v.DenyParticipants, ", ")},
			{"Withheld labels", strings.Join(v.WithholdLabels, ", ")}, {"Recorded by", v.RecordedBy},
			{"Version", v.Version}, {"Last updated", v.LastUpdated}})
	})
}

func consentList(c *cli.Context, cl *client, ctx context.Context) error {
	q := url.Values{"_count": {"1000"}}
	if c.IsSet("patient") || c.IsSet("identifier") {
		ref, err := consentPatientRef(c)
		if err != nil {
			return err
		}
		q.Set("patient", ref)
	}
	if s := c.String("status"); s != "" {
		q.Set("status", s)
	}
	views := []consentView{}
	next := "/fhir/Consent?" + q.Encode()
	for next != "" {
		var b struct {
			Link  []fhir.BundleLink `json:"link"`
			Entry []struct {
				Resource fhir.Consent `json:"resource"`
			} `json:"entry"`
		}
		if err := cl.getJSON(ctx, next, &b); err != nil {
			return fmt.Errorf("list consents: %w", err)
		}
		for _, e := range b.Entry {
			views = append(views, consentViewOf(e.Resource))
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	return cl.render(c.App.Writer, views, func() error {
		var rows [][]string
		for _, v := range views {
			rows = append(rows, []string{v.ID, v.Status, v.Patient, strconv.FormatBool(v.OptOut), strings.Join(v.DenyParticipants, ","),
				strings.Join(v.WithholdLabels, ","), v.RecordedBy, v.LastUpdated})
		}
		return printTable(c.App.Writer, []string{"ID", "STATUS", "PATIENT", "OPT-OUT", "DENIED", "WITHHELD", "RECORDED BY", "UPDATED"}, rows)
	})
}

// checkPurposeFlag refuses an unknown -purpose before any request is sent.
func checkPurposeFlag(c *cli.Context) error {
	if _, err := policy.ParsePurpose(c.String("purpose")); err != nil {
		return fmt.Errorf("-purpose: %w", err)
	}
	return nil
}
