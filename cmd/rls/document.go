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

	"github.com/rls-hie/rls/locator"
)

func documentCommand() *cli.Command {
	return &cli.Command{
		Name:  "document",
		Usage: "register, find and show document references (metadata and location, never content)",
		Subcommands: []*cli.Command{
			{
				Name:  "register",
				Usage: "register (or replace) a FHIR DocumentReference from a file",
				Flags: append(clientFlags(), &cli.StringFlag{Name: "file", Aliases: []string{"f"}, Required: true, Usage: "DocumentReference JSON `FILE` (- for standard input)"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					body, err := readInput(c.String("file"))
					if err != nil {
						return err
					}
					data, _, err := cl.do(ctx, http.MethodPost, "/fhir/DocumentReference", json.RawMessage(body), nil)
					if err != nil {
						return fmt.Errorf("register document: %w", err)
					}
					return printDocument(c, cl, data)
				}),
			},
			{
				Name:      "show",
				Usage:     "show a document reference",
				ArgsUsage: "ID",
				Flags:     clientFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					data, _, err := cl.do(ctx, http.MethodGet, "/fhir/DocumentReference/"+url.PathEscape(id), nil, nil)
					if err != nil {
						return fmt.Errorf("show document %s: %w", id, err)
					}
					return printDocument(c, cl, data)
				}),
			},
			{
				Name:  "search",
				Usage: "find document references (MHD): -patient is required",
				Flags: append(clientFlags(),
					&cli.StringFlag{Name: "patient", Usage: "Patient id, Patient/ID, or Person/EUID"},
					&cli.StringFlag{Name: "identifier", Usage: "the patient's identifier system|value"},
					&cli.BoolFlag{Name: "mdm", Usage: "widen to every record linked to the same person"},
					&cli.StringFlag{Name: "status", Usage: "current, superseded, entered-in-error"},
					&cli.StringFlag{Name: "type", Usage: "document type token (system|code or code)"},
					&cli.StringFlag{Name: "category"}, &cli.StringSliceFlag{Name: "date", Usage: "FHIR date with prefix (ge2024-01-01); repeatable"},
					&cli.StringFlag{Name: "text", Usage: "free text over title and description"},
					&cli.IntFlag{Name: "count", Value: 50}),
				Action: withClient(documentSearch),
			},
		},
	}
}

func printDocument(c *cli.Context, cl *client, data []byte) error {
	var d struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Meta   struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
		Subject struct {
			Reference string `json:"reference"`
		} `json:"subject"`
		Type struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"type"`
		Date    string `json:"date"`
		Content []struct {
			Attachment struct {
				URL, Title, ContentType string
			} `json:"attachment"`
		} `json:"content"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return fmt.Errorf("unreadable answer: %w", err)
	}
	return cl.render(c.App.Writer, json.RawMessage(data), func() error {
		typ, url, title := "", "", ""
		if len(d.Type.Coding) > 0 {
			typ = d.Type.Coding[0].System + "|" + d.Type.Coding[0].Code
		}
		if len(d.Content) > 0 {
			url, title = d.Content[0].Attachment.URL, d.Content[0].Attachment.Title
		}
		return printFields(c.App.Writer, [][2]string{{"Document", d.ID}, {"Version", d.Meta.VersionID}, {"Status", d.Status},
			{"Subject", d.Subject.Reference}, {"Type", typ}, {"Title", title}, {"Date", d.Date}, {"URL", url}})
	})
}

func documentSearch(c *cli.Context, cl *client, ctx context.Context) error {
	q := url.Values{"_count": {strconv.Itoa(c.Int("count"))}}
	suffix := ""
	if c.Bool("mdm") {
		suffix = ":mdm"
	}
	if p := c.String("patient"); p != "" {
		q.Set("patient"+suffix, p)
	}
	if id := c.String("identifier"); id != "" {
		q.Set("patient.identifier"+suffix, id)
	}
	for _, name := range []string{"status", "type", "category"} {
		if v := c.String(name); v != "" {
			q.Set(name, v)
		}
	}
	for _, d := range c.StringSlice("date") {
		q.Add("date", d)
	}
	if t := c.String("text"); t != "" {
		q.Set("_text", t)
	}
	data, _, err := cl.do(ctx, http.MethodGet, "/fhir/DocumentReference?"+q.Encode(), nil, nil)
	if err != nil {
		return fmt.Errorf("search documents: %w", err)
	}
	var b struct {
		Total int `json:"total"`
		Entry []struct {
			Resource struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Type   struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"type"`
				Content []struct {
					Attachment struct{ URL, Title, Creation string } `json:"attachment"`
				} `json:"content"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return fmt.Errorf("search documents: unreadable answer: %w", err)
	}
	return cl.render(c.App.Writer, json.RawMessage(data), func() error {
		var rows [][]string
		for _, e := range b.Entry {
			r := e.Resource
			typ, title, created, u := "", "", "", ""
			if len(r.Type.Coding) > 0 {
				typ = r.Type.Coding[0].Code
			}
			if len(r.Content) > 0 {
				title, created, u = r.Content[0].Attachment.Title, r.Content[0].Attachment.Creation, r.Content[0].Attachment.URL
			}
			rows = append(rows, []string{r.ID, r.Status, typ, created, title, u})
		}
		fmt.Fprintf(c.App.Writer, "%d documents\n", b.Total)
		return printTable(c.App.Writer, []string{"ID", "STATUS", "TYPE", "CREATED", "TITLE", "URL"}, rows)
	})
}

func locateCommand() *cli.Command {
	return &cli.Command{
		Name:  "locate",
		Usage: "where does this patient have records? (by identifier, EUID or demographics)",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "identifier", Usage: "system|value"}, &cli.StringFlag{Name: "euid"},
			&cli.StringFlag{Name: "family"}, &cli.StringFlag{Name: "given"}, &cli.StringFlag{Name: "birthdate"},
			&cli.StringFlag{Name: "gender"}, &cli.StringFlag{Name: "postal-code"},
			&cli.StringFlag{Name: "min-grade", Value: "certain", Usage: "certain, probable or possible (demographics only)"}),
		Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
			q := url.Values{}
			for flag, param := range map[string]string{"identifier": "identifier", "euid": "euid", "family": "family", "given": "given",
				"birthdate": "birthdate", "gender": "gender", "postal-code": "postalcode"} {
				if v := c.String(flag); v != "" {
					q.Set(param, v)
				}
			}
			if len(q) == 0 {
				return fmt.Errorf("locate needs -identifier, -euid, or demographics (-family, -given, -birthdate, …)")
			}
			if c.IsSet("min-grade") {
				q.Set("min_grade", c.String("min-grade"))
			}
			var res locator.LocateResult
			if err := cl.getJSON(ctx, "/v1/locate?"+q.Encode(), &res); err != nil {
				return fmt.Errorf("locate: %w", err)
			}
			return cl.render(c.App.Writer, res, func() error {
				fmt.Fprintf(c.App.Writer, "Person %s (%s)\n\n", res.EUID, res.Grade)
				var rows [][]string
				for _, l := range res.Locations {
					var ids []string
					for _, id := range l.Identifiers {
						ids = append(ids, id.System+"|"+id.Value)
					}
					rows = append(rows, []string{l.Participant.ID, l.Participant.Name, strings.Join(ids, ", "), strconv.Itoa(l.DocumentCount),
						l.NewestDocument, strings.Join(l.DocumentTypes, ", "), l.Participant.Endpoint})
				}
				return printTable(c.App.Writer, []string{"PARTICIPANT", "NAME", "IDENTIFIERS", "DOCUMENTS", "NEWEST", "TYPES", "ENDPOINT"}, rows)
			})
		}),
	}
}
