package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/locator/fhir"
	"github.com/rls-hie/rls/raft/model"
)

// NotifyConfig is the notify block: how the leader delivers subscription notifications.
// Durations are strings such as "500ms".
type NotifyConfig struct {
	// AllowHTTP admits http:// endpoints; AllowLocalEndpoints loopback and link-local
	// addresses (the node itself, a cloud metadata service). Both default to false, and
	// to true with -dev.
	AllowHTTP           *bool `hcl:"allow_http,optional"`
	AllowLocalEndpoints *bool `hcl:"allow_local_endpoints,optional"`
	// Timeout bounds one attempt; Retries attempts more are made with exponential
	// backoff and jitter between RetryMin and RetryMax before the subscription goes to
	// error; it is then tried again after a wait that doubles up to ErrorBackoffMax.
	Timeout         string `hcl:"timeout,optional"`
	Retries         int    `hcl:"retries,optional"`
	RetryMin        string `hcl:"retry_min,optional"`
	RetryMax        string `hcl:"retry_max,optional"`
	ErrorBackoffMax string `hcl:"error_backoff_max,optional"`
}

// options fills the locator's notification options; dev admits http and local endpoints
// unless the block says otherwise.
func (n *NotifyConfig) options(dev bool) (locator.NotifyOptions, error) {
	o := locator.NotifyOptions{AllowHTTP: dev, AllowLocal: dev, Retries: n.Retries}
	if n.AllowHTTP != nil {
		o.AllowHTTP = *n.AllowHTTP
	}
	if n.AllowLocalEndpoints != nil {
		o.AllowLocal = *n.AllowLocalEndpoints
	}
	if n.Retries < 0 {
		return o, fmt.Errorf("notify.retries %d must not be negative", n.Retries)
	}
	for _, d := range []struct {
		name, value string
		to          *time.Duration
	}{
		{"notify.timeout", n.Timeout, &o.Timeout}, {"notify.retry_min", n.RetryMin, &o.RetryMin},
		{"notify.retry_max", n.RetryMax, &o.RetryMax}, {"notify.error_backoff_max", n.ErrorBackoffMax, &o.ErrorBackoffMax},
	} {
		v, err := duration(d.value)
		if err != nil {
			return o, fmt.Errorf("%s: %w", d.name, err)
		}
		*d.to = v
	}
	return o, nil
}

func subscriptionCommand() *cli.Command {
	topics := map[string]string{"encounter": model.TopicEncounter, "document": model.TopicDocument, "identity": model.TopicIdentity}
	return &cli.Command{
		Name:  "subscription",
		Usage: "subscribe this participant to notifications (FHIR Subscription, rest-hook), list, show, disable and check them",
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "subscribe to a topic; prints the subscription and, once, its signing secret (the notifications disclose under -purpose)",
				Flags: append(clientFlags(),
					&cli.StringFlag{Name: "topic", Required: true, Usage: "`TOPIC`: encounter, document or identity (or the topic's canonical URL)"},
					&cli.StringFlag{Name: "endpoint", Required: true, Usage: "the receiver's `URL` (https)"},
					&cli.StringFlag{Name: "payload", Value: model.PayloadIDOnly, Usage: "`CONTENT`: empty, id-only or full-resource"},
					&cli.StringFlag{Name: "reason", Value: "notifications for this participant's patients", Usage: "why (Subscription.reason)"},
					&cli.StringFlag{Name: "secret", Usage: "HMAC secret (32-128 characters); default: rls draws one"},
				),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					topic := c.String("topic")
					if t, ok := topics[topic]; ok {
						topic = t
					}
					s := fhir.Subscription{ResourceType: "Subscription", Status: model.SubscriptionRequested, Reason: c.String("reason"), Criteria: topic,
						Extension: []fhir.Extension{{URL: fhir.ExtPurposeOfUse, ValueCode: strings.ToUpper(c.String("purpose"))}},
						Channel: fhir.SubscriptionChannel{Type: "rest-hook", Endpoint: c.String("endpoint"), Payload: fhir.FHIRJSON,
							PayloadX: &fhir.PrimitiveExtensions{Extension: []fhir.Extension{{URL: fhir.ExtPayloadContent, ValueCode: c.String("payload")}}}}}
					if sec := c.String("secret"); sec != "" {
						s.Extension = append(s.Extension, fhir.Extension{URL: fhir.ExtSubscriptionSecret, ValueString: sec})
					}
					return sendSubscription(c, cl, ctx, http.MethodPost, "/fhir/Subscription", s, nil, "subscribe")
				}),
			},
			{
				Name: "list", Usage: "list subscriptions (the admin: every participant's)",
				Flags: append(clientFlags(), &cli.StringFlag{Name: "status", Usage: "active, error or off"}),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					q := url.Values{}
					if st := c.String("status"); st != "" {
						q.Set("status", st)
					}
					var b struct {
						Entry []struct {
							Resource fhir.Subscription `json:"resource"`
						} `json:"entry"`
					}
					if err := cl.getJSON(ctx, "/fhir/Subscription?"+q.Encode(), &b); err != nil {
						return fmt.Errorf("list subscriptions: %w", err)
					}
					var views []subscriptionView
					for _, e := range b.Entry {
						views = append(views, subscriptionViewOf(e.Resource))
					}
					return cl.render(c.App.Writer, views, func() error {
						var rows [][]string
						for _, v := range views {
							rows = append(rows, []string{v.ID, v.Topic, v.Status, v.Endpoint, v.Payload, strconv.Itoa(v.Delivered), strconv.Itoa(v.Pending), v.Error})
						}
						return printTable(c.App.Writer, []string{"ID", "TOPIC", "STATUS", "ENDPOINT", "PAYLOAD", "DELIVERED", "PENDING", "LAST ERROR"}, rows)
					})
				}),
			},
			{
				Name: "show", Usage: "show one subscription", ArgsUsage: "ID", Flags: clientFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					return sendSubscription(c, cl, ctx, http.MethodGet, "/fhir/Subscription/"+url.PathEscape(id), nil, nil, "show subscription "+id)
				}),
			},
			{
				Name: "disable", Usage: "turn a subscription off (nothing is kept for it while off; turned on again, it starts from then)", ArgsUsage: "ID",
				Flags: clientFlags(), Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					return setSubscriptionStatus(c, cl, ctx, model.SubscriptionOff)
				}),
			},
			{
				Name: "enable", Usage: "turn a subscription on again, or resume one in error at once", ArgsUsage: "ID",
				Flags: clientFlags(), Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					return setSubscriptionStatus(c, cl, ctx, model.SubscriptionActive)
				}),
			},
			{
				Name: "status", Usage: "the subscription's status ($status): events delivered, pending, last error", ArgsUsage: "ID", Flags: clientFlags(),
				Action: withClient(func(c *cli.Context, cl *client, ctx context.Context) error {
					id, err := oneArg(c, "ID")
					if err != nil {
						return err
					}
					var st fhir.Parameters
					if err := cl.getJSON(ctx, "/fhir/Subscription/"+url.PathEscape(id)+"/$status", &st); err != nil {
						return fmt.Errorf("status of subscription %s: %w", id, err)
					}
					var s fhir.Subscription
					if err := cl.getJSON(ctx, "/fhir/Subscription/"+url.PathEscape(id), &s); err != nil {
						return fmt.Errorf("subscription %s: %w", id, err)
					}
					v := subscriptionViewOf(s)
					return cl.render(c.App.Writer, st, func() error {
						pairs := [][2]string{{"id", v.ID}, {"topic", v.Topic}, {"status", v.Status}, {"endpoint", v.Endpoint}}
						for _, p := range st.Parameter {
							if p.Name == "events-since-subscription-start" {
								pairs = append(pairs, [2]string{"events delivered", p.ValueString})
							}
						}
						pairs = append(pairs, [2]string{"events pending", strconv.Itoa(v.Pending)}, [2]string{"last delivered", v.LastDelivered}, [2]string{"last error", v.Error})
						return printFields(c.App.Writer, pairs)
					})
				}),
			},
		},
	}
}

// subscriptionView is how the CLI shows a subscription.
type subscriptionView struct {
	ID            string `json:"id"`
	Topic         string `json:"topic"`
	Status        string `json:"status"`
	Endpoint      string `json:"endpoint"`
	Payload       string `json:"payload"`
	Purpose       string `json:"purpose"`
	Delivered     int    `json:"delivered"`
	Pending       int    `json:"pending"`
	LastDelivered string `json:"last_delivered,omitempty"`
	Error         string `json:"last_error,omitempty"`
	Secret        string `json:"secret,omitempty"`
	Version       string `json:"version"`
}

func subscriptionViewOf(s fhir.Subscription) subscriptionView {
	v := subscriptionView{ID: s.ID, Status: s.Status, Endpoint: s.Channel.Endpoint, Error: s.Error, Topic: s.Criteria}
	for name, url := range map[string]string{"encounter": model.TopicEncounter, "document": model.TopicDocument, "identity": model.TopicIdentity} {
		if url == s.Criteria {
			v.Topic = name
		}
	}
	if s.Meta != nil {
		v.Version = s.Meta.VersionID
	}
	if s.Channel.PayloadX != nil {
		for _, e := range s.Channel.PayloadX.Extension {
			v.Payload = e.ValueCode
		}
	}
	for _, e := range s.Extension {
		switch e.URL {
		case fhir.ExtPurposeOfUse:
			v.Purpose = e.ValueCode
		case fhir.ExtEventsDelivered:
			if e.ValueInteger != nil {
				v.Delivered = *e.ValueInteger
			}
		case fhir.ExtPendingEvents:
			if e.ValueInteger != nil {
				v.Pending = *e.ValueInteger
			}
		case fhir.ExtLastDelivered:
			v.LastDelivered = e.ValueString
		case fhir.ExtSubscriptionSecret:
			v.Secret = e.ValueString
		}
	}
	return v
}

func sendSubscription(c *cli.Context, cl *client, ctx context.Context, method, path string, body any, header map[string]string, what string) error {
	data, _, err := cl.do(ctx, method, path, body, header)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var s fhir.Subscription
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%s: read the answer: %w", what, err)
	}
	v := subscriptionViewOf(s)
	return cl.render(c.App.Writer, v, func() error {
		pairs := [][2]string{{"id", v.ID}, {"topic", v.Topic}, {"status", v.Status}, {"endpoint", v.Endpoint}, {"payload", v.Payload},
			{"purpose", v.Purpose}, {"delivered", strconv.Itoa(v.Delivered)}, {"pending", strconv.Itoa(v.Pending)}, {"last error", v.Error}, {"version", v.Version}}
		if v.Secret != "" {
			pairs = append(pairs, [2]string{"secret", v.Secret + "   (shown once: X-Rls-Signature is sha256=HMAC-SHA256(secret, body))"})
		}
		return printFields(c.App.Writer, pairs)
	})
}

func setSubscriptionStatus(c *cli.Context, cl *client, ctx context.Context, status string) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	var cur fhir.Subscription
	if err := cl.getJSON(ctx, "/fhir/Subscription/"+url.PathEscape(id), &cur); err != nil {
		return fmt.Errorf("subscription %s: %w", id, err)
	}
	version := ""
	if cur.Meta != nil {
		version = cur.Meta.VersionID
	}
	var keep []fhir.Extension
	for _, e := range cur.Extension {
		if e.URL == fhir.ExtPurposeOfUse {
			keep = append(keep, e)
		}
	}
	cur.Status, cur.Meta, cur.Error, cur.Extension = status, nil, "", keep
	return sendSubscription(c, cl, ctx, http.MethodPut, "/fhir/Subscription/"+url.PathEscape(id), cur,
		map[string]string{"If-Match": fmt.Sprintf(`W/"%s"`, version)}, "set subscription "+id+" "+status)
}
