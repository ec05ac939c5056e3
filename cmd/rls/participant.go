package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator/fhir"
)

// participantView is how the CLI shows a participant (the API speaks FHIR Organization).
type participantView struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Kind             string `json:"kind"`
	Role             string `json:"role"`
	Active           bool   `json:"active"`
	Endpoint         string `json:"endpoint,omitempty"`
	IdentifierSystem string `json:"identifier_system,omitempty"`
	Version          string `json:"version"`
	LastUpdated      string `json:"last_updated"`
	// Purposes are the purposes of use the participant may query patient data for.
	Purposes []string `json:"purposes,omitempty"`
	// Token is present only when one was just issued.
	Token string `json:"token,omitempty"`
}

func viewOf(o fhir.Organization) participantView {
	v := participantView{ID: o.ID, Name: o.Name, Active: o.Active == nil || *o.Active}
	if o.Meta != nil {
		v.Version, v.LastUpdated = o.Meta.VersionID, o.Meta.LastUpdated
	}
	for _, t := range o.Type {
		for _, cd := range t.Coding {
			if cd.System == fhir.ParticipantKindSystem {
				v.Kind = cd.Code
			}
		}
	}
	for _, e := range o.Extension {
		switch e.URL {
		case fhir.ParticipantRoleURL:
			v.Role = e.ValueCode
		case fhir.ParticipantTokenURL:
			v.Token = e.ValueString
		case fhir.PurposeOfUseURL:
			v.Purposes = append(v.Purposes, e.ValueCode)
		}
	}
	for _, id := range o.Identifier {
		if id.System == fhir.URISystem {
			v.IdentifierSystem = id.Value
		}
	}
	for _, c := range o.Contained {
		if c.ResourceType == "Endpoint" {
			v.Endpoint = c.Address
		}
	}
	return v
}

// organization builds the Organization the API expects from CLI values.
func organization(v participantView) fhir.Organization {
	active := v.Active
	o := fhir.Organization{
		ResourceType: "Organization",
		ID:           v.ID,
		Name:         v.Name,
		Active:       &active,
		Type:         []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: fhir.ParticipantKindSystem, Code: v.Kind}}}},
		Extension:    []fhir.Extension{{URL: fhir.ParticipantRoleURL, ValueCode: v.Role}},
	}
	for _, p := range v.Purposes {
		o.Extension = append(o.Extension, fhir.Extension{URL: fhir.PurposeOfUseURL, ValueCode: p})
	}
	if v.IdentifierSystem != "" {
		o.Identifier = []fhir.Identifier{{Use: "official", System: fhir.URISystem, Value: v.IdentifierSystem}}
	}
	if v.Endpoint != "" {
		o.Contained = []fhir.Endpoint{{ResourceType: "Endpoint", ID: "endpoint", Status: "active",
			ConnectionType: fhir.Coding{System: fhir.EndpointConnectionType, Code: "hl7-fhir-rest"},
			PayloadType:    []fhir.CodeableConcept{{Coding: []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", Code: "any"}}}},
			Address:        v.Endpoint}}
		o.Endpoint = []fhir.Reference{{Reference: "#endpoint"}}
	}
	return o
}

func participantFlags(required bool) []cli.Flag {
	return append(clientFlags(),
		&cli.StringFlag{Name: "name", Required: required, Usage: "display name"},
		&cli.StringFlag{Name: "kind", Required: required, Usage: "hospital, practice, lab or hie"},
		&cli.StringFlag{Name: "endpoint", Usage: "`URL` where the participant's systems answer"},
		&cli.StringFlag{Name: "identifier-system", Usage: "assigning authority `URI` of the participant's MRNs (e.g. urn:oid:1.2.3)"},
		&cli.StringFlag{Name: "role", Value: "participant", Usage: "participant, steward (the exchange's data steward: review queue, link, unlink, merge; the web console) or admin"},
		&cli.StringSliceFlag{Name: "purposes", Usage: "purposes of use it may query patient data for, comma-separated: TREAT, ETREAT, PAYMENT, OPERATIONS, PUBLICHEALTH, REQUEST (default: TREAT for a participant, OPERATIONS for a steward, all for an admin)"},
	)
}

func participantCommand() *cli.Command {
	return &cli.Command{
		Name:  "participant",
		Usage: "manage the exchange's participants (hospitals, practices, labs)",
		Subcommands: []*cli.Command{
			{
				Name:  "add",
				Usage: "register a participant; prints its bearer token once",
				Flags: append(participantFlags(true), &cli.StringFlag{Name: "id", Required: true, Usage: "participant id (letters, digits, '-', '.')"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					v := participantView{ID: c.String("id"), Name: c.String("name"), Kind: c.String("kind"), Role: c.String("role"),
						Endpoint: c.String("endpoint"), IdentifierSystem: c.String("identifier-system"), Active: true, Purposes: purposesFlag(c)}
					return sendParticipant(c, cl, ctx, http.MethodPost, "/fhir/Organization", organization(v), nil, "add participant "+v.ID)
				}),
			},
			{
				Name:  "list",
				Usage: "list participants",
				Flags: append(clientFlags(),
					&cli.StringFlag{Name: "kind", Usage: "only this kind"},
					&cli.StringFlag{Name: "active", Usage: "true or false: only active or only disabled participants"}),
				Action: withClient(participantList),
			},
			{
				Name:      "show",
				Usage:     "show one participant",
				ArgsUsage: "ID",
				Flags:     clientFlags(),
				Action:    withClient(participantShow),
			},
			{
				Name:      "update",
				Usage:     "change a participant's name, kind, endpoint, identifier system, role or purposes of use",
				ArgsUsage: "ID",
				Flags:     participantFlags(false),
				Action:    withClient(participantUpdate),
			},
			participantOperation("disable", "$disable", "disable a participant: its token stops working on every node"),
			participantOperation("enable", "$enable", "enable a disabled participant"),
			participantOperation("rotate-token", "$rotate-token", "issue a new token; the old one stops working on every node before this returns"),
			participantOperation("revoke-token", "$revoke-token", "revoke the token without issuing another; it stops working on every node before this returns"),
		},
	}
}

func participantOperation(name, op, usage string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "ID",
		Flags:     clientFlags(),
		Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
			id, err := oneArg(c, "ID")
			if err != nil {
				return err
			}
			return sendParticipant(c, cl, ctx, http.MethodPost, "/fhir/Organization/"+url.PathEscape(id)+"/"+op, nil, nil, name+" "+id)
		}),
	}
}

func sendParticipant(c *cli.Context, cl *client, ctx context.Context, method, path string, body any, header map[string]string, what string) error {
	data, _, err := cl.do(ctx, method, path, body, header)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var o fhir.Organization
	if err := json.Unmarshal(data, &o); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", what, err)
	}
	v := viewOf(o)
	return cl.render(c.App.Writer, v, func() error { return printParticipant(c, v) })
}

func printParticipant(c *cli.Context, v participantView) error {
	pairs := [][2]string{{"ID", v.ID}, {"Name", v.Name}, {"Kind", v.Kind}, {"Role", v.Role},
		{"Active", strconv.FormatBool(v.Active)}, {"Identifier system", v.IdentifierSystem},
		{"Endpoint", v.Endpoint}, {"Purposes of use", strings.Join(v.Purposes, ", ")}, {"Version", v.Version}, {"Last updated", v.LastUpdated}}
	if v.Token != "" {
		pairs = append(pairs, [2]string{"Token", v.Token})
	}
	if err := printFields(c.App.Writer, pairs); err != nil {
		return err
	}
	if v.Token != "" {
		fmt.Fprintln(c.App.Writer, "\nThe token is shown only now; rls keeps only its hash. Hand it to the participant securely.")
	}
	return nil
}

func participantList(c *cli.Context, cl *client, ctx context.Context) error {
	q := url.Values{"_count": {"1000"}}
	if k := c.String("kind"); k != "" {
		q.Set("type", k)
	}
	if a := c.String("active"); a != "" {
		q.Set("active", a)
	}
	var views []participantView
	next := "/fhir/Organization?" + q.Encode()
	for next != "" {
		var b struct {
			Link  []fhir.BundleLink `json:"link"`
			Entry []struct {
				Resource fhir.Organization `json:"resource"`
			} `json:"entry"`
		}
		if err := cl.getJSON(ctx, next, &b); err != nil {
			return fmt.Errorf("list participants: %w", err)
		}
		for _, e := range b.Entry {
			views = append(views, viewOf(e.Resource))
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	if views == nil {
		views = []participantView{}
	}
	return cl.render(c.App.Writer, views, func() error {
		var rows [][]string
		for _, v := range views {
			rows = append(rows, []string{v.ID, v.Name, v.Kind, v.Role, strconv.FormatBool(v.Active), v.IdentifierSystem, v.Endpoint})
		}
		return printTable(c.App.Writer, []string{"ID", "NAME", "KIND", "ROLE", "ACTIVE", "IDENTIFIER SYSTEM", "ENDPOINT"}, rows)
	})
}

func participantShow(c *cli.Context, cl *client, ctx context.Context) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	return sendParticipant(c, cl, ctx, http.MethodGet, "/fhir/Organization/"+url.PathEscape(id), nil, nil, "show participant "+id)
}

// participantUpdate reads the participant, changes the fields given, and writes it back on
// the condition that nobody changed it in between (If-Match).
func participantUpdate(c *cli.Context, cl *client, ctx context.Context) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	var current fhir.Organization
	if err := cl.getJSON(ctx, "/fhir/Organization/"+url.PathEscape(id), &current); err != nil {
		return fmt.Errorf("update participant %s: %w", id, err)
	}
	v := viewOf(current)
	changed := false
	for _, f := range []struct {
		flag string
		dst  *string
	}{{"name", &v.Name}, {"kind", &v.Kind}, {"endpoint", &v.Endpoint}, {"identifier-system", &v.IdentifierSystem}, {"role", &v.Role}} {
		if c.IsSet(f.flag) {
			*f.dst = strings.TrimSpace(c.String(f.flag))
			changed = true
		}
	}
	switch {
	case c.IsSet("purposes"):
		v.Purposes = purposesFlag(c)
		changed = true
	case c.IsSet("role"):
		v.Purposes = nil // the new role's default purposes
	}
	if !changed {
		return fmt.Errorf("update participant %s: nothing to change (give -name, -kind, -endpoint, -identifier-system, -role or -purposes)", id)
	}
	return sendParticipant(c, cl, ctx, http.MethodPut, "/fhir/Organization/"+url.PathEscape(id), organization(v),
		map[string]string{"If-Match": fmt.Sprintf(`W/"%s"`, v.Version)}, "update participant "+id)
}
