package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator/fhir"
)

func patientCommand() *cli.Command {
	return &cli.Command{
		Name:  "patient",
		Usage: "register, find and inspect patients and their enterprise identities",
		Subcommands: append([]*cli.Command{
			{
				Name:  "register",
				Usage: "register (or update) a FHIR Patient from a file and show the match decision",
				Flags: append(clientFlags(), &cli.StringFlag{Name: "file", Aliases: []string{"f"}, Required: true, Usage: "Patient JSON `FILE` (- for standard input)"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					body, err := readInput(c.String("file"))
					if err != nil {
						return err
					}
					data, _, err := cl.do(ctx, http.MethodPost, "/fhir/Patient", json.RawMessage(body), nil)
					if err != nil {
						return fmt.Errorf("register patient: %w", err)
					}
					var p fhir.Patient
					if err := json.Unmarshal(data, &p); err != nil {
						return fmt.Errorf("register patient: unreadable answer: %w", err)
					}
					return cl.render(c.App.Writer, json.RawMessage(data), func() error { return printRegistered(c, p) })
				}),
			},
			{
				Name:  "match",
				Usage: "find the persons a set of demographics could be ($match), best first",
				Flags: append(clientFlags(),
					&cli.StringFlag{Name: "family"}, &cli.StringFlag{Name: "given"}, &cli.StringFlag{Name: "birthdate", Usage: "YYYY-MM-DD"},
					&cli.StringFlag{Name: "gender", Usage: "male, female, other or unknown"}, &cli.StringFlag{Name: "postal-code"},
					&cli.StringFlag{Name: "phone"}, &cli.StringFlag{Name: "email"}, &cli.StringFlag{Name: "ssn"},
					&cli.IntFlag{Name: "count", Value: 10, Usage: "at most this many persons"},
					&cli.BoolFlag{Name: "certain", Usage: "only certain matches"}),
				Action: withClient(patientMatch),
			},
			{
				Name:      "show",
				Usage:     "show a person: the golden view of its demographics and every linked record",
				ArgsUsage: "EUID",
				Flags:     clientFlags(),
				Action:    withClient(patientShow),
			},
		}, stewardCommands()...),
	}
}

func readInput(path string) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s is not JSON", path)
	}
	return b, nil
}

func printRegistered(c *cli.Context, p fhir.Patient) error {
	euid, outcome, score := "", "", ""
	for _, id := range p.Identifier {
		if id.System == fhir.EUIDSystem {
			euid = id.Value
		}
	}
	for _, raw := range p.Extension {
		var ext fhir.Extension
		if json.Unmarshal(raw, &ext) != nil || ext.URL != fhir.MatchDecisionURL {
			continue
		}
		for _, e := range ext.Extension {
			switch e.URL {
			case "outcome":
				outcome = e.ValueCode
			case "score":
				if e.ValueDecimal != nil {
					score = fmt.Sprintf("%.2f", *e.ValueDecimal)
				}
			}
		}
	}
	version := ""
	if p.Meta != nil {
		version = p.Meta.VersionID
	}
	return printFields(c.App.Writer, [][2]string{{"Patient", p.ID}, {"Version", version}, {"Person (EUID)", euid}, {"Decision", outcome}, {"Score", score}})
}

func patientMatch(c *cli.Context, cl *client, ctx context.Context) error {
	p := map[string]any{"resourceType": "Patient"}
	if c.String("family") != "" || c.String("given") != "" {
		name := map[string]any{}
		if f := c.String("family"); f != "" {
			name["family"] = f
		}
		if g := c.String("given"); g != "" {
			name["given"] = strings.Fields(g)
		}
		p["name"] = []any{name}
	}
	if v := c.String("birthdate"); v != "" {
		p["birthDate"] = v
	}
	if v := c.String("gender"); v != "" {
		p["gender"] = v
	}
	if v := c.String("postal-code"); v != "" {
		p["address"] = []any{map[string]any{"postalCode": v}}
	}
	var telecom []any
	if v := c.String("phone"); v != "" {
		telecom = append(telecom, map[string]any{"system": "phone", "value": v})
	}
	if v := c.String("email"); v != "" {
		telecom = append(telecom, map[string]any{"system": "email", "value": v})
	}
	if telecom != nil {
		p["telecom"] = telecom
	}
	if v := c.String("ssn"); v != "" {
		p["identifier"] = []any{map[string]any{"system": fhir.SSNSystem, "value": v}}
	}
	if len(p) == 1 {
		return fmt.Errorf("patient match needs some demographics (-family, -given, -birthdate, …)")
	}
	params := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "resource", "resource": p},
		map[string]any{"name": "count", "valueInteger": c.Int("count")},
		map[string]any{"name": "onlyCertainMatches", "valueBoolean": c.Bool("certain")},
	}}
	data, _, err := cl.do(ctx, http.MethodPost, "/fhir/Patient/$match", params, nil)
	if err != nil {
		return fmt.Errorf("match: %w", err)
	}
	var b struct {
		Entry []struct {
			Resource fhir.Patient    `json:"resource"` // the person as a Patient, its id the EUID
			Search   fhir.SearchInfo `json:"search"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return fmt.Errorf("match: unreadable answer: %w", err)
	}
	return cl.render(c.App.Writer, json.RawMessage(data), func() error {
		var rows [][]string
		for _, e := range b.Entry {
			grade, score := "", ""
			for _, x := range e.Search.Extension {
				if x.URL == fhir.MatchGradeURL {
					grade = x.ValueCode
				}
			}
			if e.Search.Score != nil {
				score = fmt.Sprintf("%.3f", *e.Search.Score)
			}
			rows = append(rows, []string{e.Resource.ID, grade, score, nameOf(e.Resource.Name), e.Resource.BirthDate, fmt.Sprint(len(e.Resource.Link))})
		}
		if len(rows) == 0 {
			_, err := fmt.Fprintln(c.App.Writer, "no matching person")
			return err
		}
		return printTable(c.App.Writer, []string{"EUID", "GRADE", "SCORE", "NAME", "BIRTH DATE", "RECORDS"}, rows)
	})
}

func personName(p fhir.Person) string { return nameOf(p.Name) }

func nameOf(names []fhir.HumanName) string {
	if len(names) == 0 {
		return ""
	}
	return strings.TrimSpace(strings.Join(names[0].Given, " ") + " " + names[0].Family)
}

func patientShow(c *cli.Context, cl *client, ctx context.Context) error {
	euid, err := oneArg(c, "EUID")
	if err != nil {
		return err
	}
	data, _, err := cl.do(ctx, http.MethodGet, "/fhir/Person/"+url.PathEscape(euid), nil, nil)
	if err != nil {
		return fmt.Errorf("show %s: %w", euid, err)
	}
	var p fhir.Person
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("show %s: unreadable answer: %w", euid, err)
	}
	return cl.render(c.App.Writer, json.RawMessage(data), func() error {
		pairs := [][2]string{{"Person (EUID)", p.ID}, {"Name", personName(p)}, {"Birth date", p.BirthDate}, {"Gender", p.Gender}}
		if len(p.Address) > 0 {
			a := p.Address[0]
			pairs = append(pairs, [2]string{"Address", strings.TrimSpace(strings.Join(a.Line, ", ") + " " + a.City + " " + a.State + " " + a.PostalCode)})
		}
		for _, t := range p.Telecom {
			pairs = append(pairs, [2]string{t.System, t.Value})
		}
		if err := printFields(c.App.Writer, pairs); err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer)
		var rows [][]string
		for i, id := range p.Identifier {
			if id.System == fhir.EUIDSystem {
				continue
			}
			link := ""
			if i-1 < len(p.Link) && i-1 >= 0 {
				link = p.Link[i-1].Target.Reference
			}
			rows = append(rows, []string{id.System, id.Value, link})
		}
		return printTable(c.App.Writer, []string{"SYSTEM", "IDENTIFIER", "RECORD"}, rows)
	})
}
