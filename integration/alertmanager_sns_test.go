package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/stretchr/testify/require"
)

// startMoto starts moto's AWS emulator (preinstalled) on loopback and
// returns its endpoint.
func startMoto(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command("python3", "-c", fmt.Sprintf("from moto.server import main; main(['-p','%d'])", port))
	require.NoError(t, cmd.Start(), "moto (preinstalled with pip)")
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ep := fmt.Sprintf("http://127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		resp, err := http.Get(ep + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}, 30*time.Second, 100*time.Millisecond, "moto never answered")
	return ep
}

// awsAt runs the aws CLI against endpoint, with moto's test credentials,
// and returns its JSON output.
func awsAt(t *testing.T, endpoint string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command("aws", append([]string{"--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, stderr)
	m := map[string]any{}
	if len(out) > 0 {
		require.NoError(t, json.Unmarshal(out, &m))
	}
	return m
}

// snsEnvelope is an SNS notification as an SQS subscription delivers it.
type snsEnvelope struct {
	Message           string `json:"Message"`
	Subject           string `json:"Subject"`
	MessageAttributes map[string]struct {
		Value string `json:"Value"`
	} `json:"MessageAttributes"`
}

// ampJSONTemplate is the template of AMP's guide (L3436) that renders an
// SNS message as JSON; the guide's text lost some braces and quotes in
// extraction, restored here as AMP's documentation has them.
const ampJSONTemplate = `{{ define "sns.default.message" }}{{ "{" }}"receiver": "{{ .Receiver }}","status": "{{ .Status }}","alerts": [{{ range $alertIndex, $alerts := .Alerts }}{{ if $alertIndex }}, {{ end }}{{ "{" }}"status": "{{ $alerts.Status }}"{{ if gt (len $alerts.Labels.SortedPairs) 0 -}},"labels": {{ "{" }}{{ range $index, $label := $alerts.Labels.SortedPairs }}{{ if $index }}, {{ end }}"{{ $label.Name }}": "{{ $label.Value }}"{{ end }}{{ "}" }}{{- end }}{{ if gt (len $alerts.Annotations.SortedPairs ) 0 -}},"annotations": {{ "{" }}{{ range $index, $annotations := $alerts.Annotations.SortedPairs }}{{ if $index }}, {{ end }}"{{ $annotations.Name }}": "{{ $annotations.Value }}"{{ end }}{{ "}" }}{{- end }},"startsAt": "{{ $alerts.StartsAt }}","endsAt": "{{ $alerts.EndsAt }}","generatorURL": "{{ $alerts.GeneratorURL }}","fingerprint": "{{ $alerts.Fingerprint }}"{{ "}" }}{{ end }}]{{ if gt (len .GroupLabels) 0 -}},"groupLabels": {{ "{" }}{{ range $index, $groupLabels := .GroupLabels.SortedPairs }}{{ if $index }}, {{ end }}"{{ $groupLabels.Name }}": "{{ $groupLabels.Value }}"{{ end }}{{ "}" }}{{- end }}{{ if gt (len .CommonLabels) 0 -}},"commonLabels": {{ "{" }}{{ range $index, $commonLabels := .CommonLabels.SortedPairs }}{{ if $index }}, {{ end }}"{{ $commonLabels.Name }}": "{{ $commonLabels.Value }}"{{ end }}{{ "}" }}{{- end }}{{ if gt (len .CommonAnnotations) 0 -}},"commonAnnotations": {{ "{" }}{{ range $index, $commonAnnotations := .CommonAnnotations.SortedPairs }}{{ if $index }}, {{ end }}"{{ $commonAnnotations.Name }}": "{{ $commonAnnotations.Value }}"{{ end }}{{ "}" }}{{- end }}{{ "}" }}{{ end }}
{{ define "sns.default.subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}]{{ end }}`

// TestAlertmanagerSNSMessageRules publishes through moto's SNS one
// notification per rule of AMP's SNS receiver (guide L3519), reads each
// back through an SQS subscription, and checks what AMP's rules say; the
// JSON template of the guide (L3436) renders valid JSON.
func TestAlertmanagerSNSMessageRules(t *testing.T) {
	moto := startMoto(t)
	topic := awsAt(t, moto, "sns", "create-topic", "--name", "alerts")["TopicArn"].(string)
	queue := awsAt(t, moto, "sqs", "create-queue", "--queue-name", "alerts")["QueueUrl"].(string)
	queueARN := awsAt(t, moto, "sqs", "get-queue-attributes", "--queue-url", queue, "--attribute-names", "QueueArn")["Attributes"].(map[string]any)["QueueArn"].(string)
	awsAt(t, moto, "sns", "subscribe", "--topic-arn", topic, "--protocol", "sqs", "--notification-endpoint", queueARN)

	dataDir := t.TempDir()
	v := startMonolith(t, dataDir, "-alertmanager.poll-interval=200ms", "-ruler.poll-interval=200ms", "-ruler.min-evaluation-interval=1s",
		"-alertmanager.receivers-firewall-block-private-addresses=false", "-alertmanager.sns-allow-api-url=true")
	base := v.BaseURL()
	ws := createWorkspace(t, base, "sns")
	// The workspace's vended logs (a logging configuration) take its WARN
	// and ERROR events: AMP's SNS rules, and a rule that fails.
	body, err := json.Marshal(map[string]string{"logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:amp:*"})
	require.NoError(t, err)
	resp, err := http.Post(base+"/workspaces/"+ws+"/logging", "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	createNamespace(t, base, ws, "failing", "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - record: r\n        expr: vector(1) + on() (vector(1) or label_replace(vector(1), \"a\", \"b\", \"\", \"\"))\n")
	indent := func(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
	putDefinition(t, base, ws, fmt.Sprintf(`template_files:
  default_template: |
%s
  rules: |
    {{ define "msg" }}{{ if eq .CommonLabels.case "utf8" }}bad {{ "\xff" }}{{ else }}{{ .CommonAnnotations.body }}{{ end }}{{ end }}
alertmanager_config: |
  templates: ['default_template', 'rules']
  route:
    receiver: rules
    group_by: [case]
    group_wait: 1s
    group_interval: 1h
    repeat_interval: 1h
    routes:
    - matchers: [case="json"]
      receiver: json
  receivers:
  - name: rules
    sns_configs:
    - topic_arn: %[2]s
      api_url: %[3]s
      sigv4: {region: us-east-1, access_key: test, secret_key: test}
      message: '{{ template "msg" . }}'
      subject: '{{ .CommonAnnotations.subject }}'
      attributes:
        case: '{{ .CommonLabels.case }}'
        '{{ or .CommonAnnotations.attrkey "fine" }}': '{{ or .CommonAnnotations.attrval "v" }}'
  - name: json
    sns_configs:
    - topic_arn: %[2]s
      api_url: %[3]s
      sigv4: {region: us-east-1, access_key: test, secret_key: test}
`, indent("    "+strings.ReplaceAll(ampJSONTemplate, "\n", "\n    ")), topic, moto))
	am := alertmanagerClient(t, base, ws)
	waitDefinitionInForce(t, am)

	cases := []struct {
		name        string
		annotations map[string]string
		check       func(t *testing.T, e snsEnvelope)
	}{
		{"plain", map[string]string{"body": "hello", "subject": "hi"}, func(t *testing.T, e snsEnvelope) {
			require.Equal(t, "hello", e.Message)
			require.Equal(t, "hi", e.Subject)
			require.Equal(t, "v", e.MessageAttributes["fine"].Value)
			require.NotContains(t, e.MessageAttributes, "modified")
		}},
		{"utf8", nil, func(t *testing.T, e snsEnvelope) {
			require.Equal(t, "Error - not a valid UTF-8 encoded string.", e.Message)
			require.Equal(t, "true", e.MessageAttributes["truncated"].Value)
			require.Equal(t, "Message: Error - not a valid UTF-8 encoded string.", e.MessageAttributes["modified"].Value)
		}},
		{"empty", map[string]string{"subject": "s"}, func(t *testing.T, e snsEnvelope) {
			require.Equal(t, "Error - Message should not be empty.", e.Message)
			require.Equal(t, "Message: Error - Message should not be empty.", e.MessageAttributes["modified"].Value)
		}},
		{"big", map[string]string{"body": strings.Repeat("x", 300*1024)}, func(t *testing.T, e snsEnvelope) {
			require.Less(t, len(e.Message), 256*1024)
			require.Greater(t, len(e.Message), 250*1024)
			require.Equal(t, "true", e.MessageAttributes["truncated"].Value)
			require.Equal(t, "Message: Error - Message has been truncated from 300 KB, because it exceeds the 256 KB size limit.", e.MessageAttributes["modified"].Value)
		}},
		{"subject-ascii", map[string]string{"body": "m", "subject": "Störung"}, func(t *testing.T, e snsEnvelope) {
			require.Equal(t, "Error - contains non printable ASCII characters.", e.Subject)
			require.Equal(t, "Subject: Error - contains non-printable ASCII characters.", e.MessageAttributes["modified"].Value)
		}},
		{"subject-long", map[string]string{"body": "m", "subject": strings.Repeat("s", 130)}, func(t *testing.T, e snsEnvelope) {
			require.Equal(t, strings.Repeat("s", 100), e.Subject)
			require.Equal(t, "Subject: Error - Subject has been truncated from 130 characters, because it exceeds the 100 character size limit.", e.MessageAttributes["modified"].Value)
		}},
		{"attribute-invalid", map[string]string{"body": "m", "attrkey": "AWS.reserved"}, func(t *testing.T, e snsEnvelope) {
			require.NotContains(t, e.MessageAttributes, "AWS.reserved")
			require.Equal(t, "MessageAttribute: Error - 1 of the message attributes have been removed because of invalid MessageAttributeKey or MessageAttributeValue.", e.MessageAttributes["modified"].Value)
		}},
		{"attributes-big", map[string]string{"body": strings.Repeat("m", 200*1024), "attrval": strings.Repeat("a", 60*1024)}, func(t *testing.T, e snsEnvelope) {
			require.NotContains(t, e.MessageAttributes, "fine")
			require.Equal(t, "MessageAttribute: Error - 1 of the message attributes have been removed, because it exceeds the 256KB size limit.", e.MessageAttributes["modified"].Value)
		}},
		{"json", map[string]string{"summary": "disk full"}, func(t *testing.T, e snsEnvelope) {
			var doc struct {
				Receiver string `json:"receiver"`
				Status   string `json:"status"`
				Alerts   []struct {
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"alerts"`
				CommonLabels map[string]string `json:"commonLabels"`
			}
			require.NoError(t, json.Unmarshal([]byte(e.Message), &doc), "the guide's JSON template renders JSON: %s", e.Message)
			require.Equal(t, "json", doc.Receiver)
			require.Equal(t, "firing", doc.Status)
			require.Equal(t, "disk full", doc.Alerts[0].Annotations["summary"])
			require.Equal(t, "json", doc.CommonLabels["case"])
			require.Equal(t, "[FIRING:1]", e.Subject)
		}},
	}
	var alerts models.PostableAlerts
	for _, c := range cases {
		a := postableAlert(map[string]string{"alertname": "SNSRule", "case": c.name})
		a.Annotations = models.LabelSet{}
		for k, v := range c.annotations {
			a.Annotations[k] = v
		}
		a.StartsAt = strfmt.DateTime(time.Now())
		alerts = append(alerts, a)
	}
	_, err = am.Alert.PostAlerts(alert.NewPostAlertsParams().WithAlerts(alerts))
	require.NoError(t, err)

	got := map[string]snsEnvelope{}
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < len(cases) && time.Now().Before(deadline) {
		out := awsAt(t, moto, "sqs", "receive-message", "--queue-url", queue, "--max-number-of-messages", "10", "--message-attribute-names", "All")
		msgs, _ := out["Messages"].([]any)
		for _, m := range msgs {
			var e snsEnvelope
			require.NoError(t, json.Unmarshal([]byte(m.(map[string]any)["Body"].(string)), &e))
			name := e.MessageAttributes["case"].Value
			if name == "" { // the JSON receiver sets no attributes
				name = "json"
			}
			got[name] = e
		}
		if len(msgs) == 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, ok := got[c.name]
			require.True(t, ok, "no SNS message for case %s", c.name)
			c.check(t, e)
		})
	}

	// The vended logs: one JSON line per event, AMP's fields and words.
	type vendedLine struct {
		WorkspaceID string `json:"workspaceId"`
		Message     struct {
			Log   string `json:"log"`
			Level string `json:"level"`
		} `json:"message"`
		Component string `json:"component"`
	}
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(filepath.Join(dataDir, "vended-logs", ws+".log"))
		if err != nil {
			return false
		}
		am, ruler := true, false
		events := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var line vendedLine
			if json.Unmarshal([]byte(l), &line) != nil || line.WorkspaceID != ws || (line.Message.Level != "WARN" && line.Message.Level != "ERROR") {
				return false // a line being written, or a wrong one: read again
			}
			if line.Component == "alertmanager" {
				events[line.Message.Log] = true
			}
			ruler = ruler || (line.Component == "ruler" && strings.Contains(line.Message.Log, "found duplicate series for the match group"))
		}
		for _, e := range []string{
			"Message has been modified because the content was empty.",
			"Message has been modified because it is not a valid UTF-8 encoded string.",
			"Message has been truncated because it exceeds size limit, originSize=300K, truncatedSize=253K",
			"Subject has been modified because it contains control or non-ASCII characters.",
			"Subject has been truncated because it exceeds size limit, originSize=130, truncatedSize=100",
			"MessageAttributes has been removed because of invalid key/value, numberOfRemovedAttributes=1",
			"MessageAttributes has been removed because it exceeds size limit, numberOfRemovedAttributes=1",
		} {
			am = am && events[e]
		}
		return am && ruler
	}, 30*time.Second, 200*time.Millisecond, "the vended logs hold the alertmanager's and the ruler's events")
}
