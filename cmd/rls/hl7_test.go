package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rls-hie/rls/integration/testkit"
	"github.com/rls-hie/rls/locator"
	"github.com/rls-hie/rls/locator/hl7"
	"github.com/rls-hie/rls/raft/rafttest"
)

// startNodeWithMLLP is startNode with an MLLP listener that names senders by MSH-4 (as a
// -dev listener on loopback does); it returns the API's URL and the listener's address.
func startNodeWithMLLP(t *testing.T) (string, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	node := rafttest.Start(t, rafttest.Options{HTTPAddr: "http://" + srv.Listener.Addr().String(), AdminTokenHash: locator.TokenHash(testToken)})
	api := locator.New(locator.Options{Node: node.Node, TempDir: t.TempDir()})
	srv.Config.Handler = api.Handler()
	srv.Start()
	ml := testkit.Listen(t)
	mllp := &hl7.Server{Handler: api.HL7Handler(locator.HL7Options{TrustNetwork: true})}
	go mllp.Serve(ml)
	t.Cleanup(func() { mllp.Close(); srv.Close() })
	return srv.URL, ml.Addr().String()
}

// TestHL7SendPrintsTheAcknowledgements: `rls hl7 send` reads a file of messages (LF and
// CRLF line ends, one message still in its MLLP frame), sends them over one connection,
// prints every acknowledgement and exits 1 because one was AE.
func TestHL7SendPrintsTheAcknowledgements(t *testing.T) {
	addr, mllp := startNodeWithMLLP(t)
	if _, errOut, code := rls(t, "participant", "add", "-addr", addr, "-token", testToken, "--id", "st-mary", "--name", "St Mary",
		"--kind", "hospital", "--identifier-system", "urn:oid:2.16.840.1.113883.3.1001"); code != 0 {
		t.Fatalf("participant add: %s", errOut)
	}
	file := filepath.Join(t.TempDir(), "feed.hl7")
	os.WriteFile(file, []byte("MSH|^~\\&|ADT|st-mary|RLS|HIE|20261101093000||ADT^A04^ADT_A01|M1|P|2.5\n"+
		"PID|1||MRN-1^^^st-mary^MR||DOE^JANE||19800101|F\n\n"+
		"MSH|^~\\&|ADT|st-mary|RLS|HIE|20261101093000||ADT^A08^ADT_A01|M2|P|2.5\r\n"+
		"PID|1||MRN-1^^^st-mary^MR||DOE^JANE||19800132|F\r\n"+
		"\x0bMSH|^~\\&|ADT|st-mary|RLS|HIE|20261101093000||ADT^A04^ADT_A01|M3|P|2.3.1\rPID|1||MRN-2^^^st-mary||ROE^RICHARD||19700202|M\r\x1c\r"), 0o600)
	out, errOut, code := rls(t, "hl7", "send", "-addr", mllp, file)
	if code != 1 || !strings.Contains(errOut, "sent 3 messages: 2 AA, 1 AE") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"# message 1 (M1): AA\nMSH|", "MSA|AA|M1", "# message 2 (M2): AE", "ERR||PID^1^7|102^Data type error^HL70357", "MSA|AA|M3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, errOut, code := rls(t, "hl7", "send", "-addr", mllp, filepath.Join(t.TempDir(), "none.hl7")); code != 1 || !strings.Contains(errOut, "none.hl7") {
		t.Fatalf("missing file: exit %d %q", code, errOut)
	}

	admin := []string{"-addr", addr, "-token", testToken}
	out, errOut, code = rls(t, append(append([]string{"hl7", "endpoint", "add"}, admin...), "-participant", "st-mary", "-address", "mllp://127.0.0.1:2576", "-domain", "urn:oid:2.16.840.1.113883.3.1001")...)
	if code != 0 || !strings.Contains(out, "st-mary") || !strings.Contains(out, "active") {
		t.Fatalf("endpoint add: %d %s %s", code, out, errOut)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	out, _, code = rls(t, append(append([]string{"hl7", "endpoint", "disable"}, admin...), id)...)
	if code != 0 || !strings.Contains(out, " off ") {
		t.Fatalf("endpoint disable: %d %s", code, out)
	}
	out, _, _ = rls(t, append([]string{"hl7", "endpoint", "list"}, admin...)...)
	if !strings.Contains(out, id) || !strings.Contains(out, "mllp://127.0.0.1:2576") {
		t.Fatalf("endpoint list: %s", out)
	}
	if _, errOut, code := rls(t, append(append([]string{"hl7", "endpoint", "add"}, admin...), "-participant", "st-mary", "-address", "tcp://x:1")...); code == 0 || !strings.Contains(errOut, "address") {
		t.Fatalf("bad address accepted: %q", errOut)
	}
}
