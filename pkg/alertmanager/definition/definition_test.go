package definition

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// amp is the definition of AMP's guide (L3235), with a template.
const amp = `template_files:
  default_template: |
    {{ define "sns.default.message" }}{{ .CommonLabels.alertname }}{{ end }}
alertmanager_config: |
  route:
    receiver: 'default'
  receivers:
  - name: 'default'
    sns_configs:
    - topic_arn: arn:aws:sns:us-east-2:123456789012:My-Topic
      sigv4:
        region: us-east-2
        access_key: AKIAEXAMPLE
        secret_key: secret
      attributes:
        key: key1
        value: value1
`

// withConfig is a definition holding the Alertmanager configuration cfg.
func withConfig(cfg string) string {
	return "alertmanager_config: |\n  " + strings.ReplaceAll(strings.TrimSpace(cfg), "\n", "\n  ") + "\n"
}

func webhook(url string) string {
	return withConfig(fmt.Sprintf("route:\n  receiver: hook\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: %q\n", url))
}

func TestParse(t *testing.T) {
	strict := &Egress{BlockPrivate: true}
	open := &Egress{}
	manyTemplates := "template_files:\n"
	for i := 0; i < 101; i++ {
		manyTemplates += fmt.Sprintf("  t%d: '{{ define \"t%d\" }}x{{ end }}'\n", i, i)
	}
	manyTemplates += withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n")
	inhibit := "route:\n  receiver: r\nreceivers:\n- name: r\ninhibit_rules:\n"
	for i := 0; i < 101; i++ {
		inhibit += fmt.Sprintf("- source_matchers: [a=\"%d\"]\n  target_matchers: [b=\"%d\"]\n", i, i)
	}
	routes := "route:\n  receiver: r\n  routes:\n"
	for i := 0; i < 100; i++ {
		routes += fmt.Sprintf("  - matchers: [n=\"%d\"]\n", i)
	}
	routes += "receivers:\n- name: r\n"

	for _, tc := range []struct {
		name, def string
		eg        *Egress
		refused   string // "" : accepted
	}{
		{"AMP's example", amp, strict, ""},
		{"not YAML", "alertmanager_config: [", strict, "not a YAML document"},
		{"an unknown root key", "receivers: []\n" + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, "field receivers not found"},
		{"no alertmanager_config", "template_files: {}\n", strict, "no alertmanager_config"},
		{"no route", withConfig("receivers:\n- name: r\n"), strict, "no routes provided"},
		{"an undefined receiver", withConfig("route:\n  receiver: nope\nreceivers:\n- name: r\n"), strict, "undefined receiver"},
		{"an invalid template", "template_files:\n  bad: '{{ define \"x\" }}'\n" + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, `template file "bad"`},
		{"101 templates", manyTemplates, strict, "101 template files, more than the 100"},
		{"101 inhibit rules", withConfig(inhibit), strict, "101 inhibit rules, more than the 100"},
		{"101 route nodes", withConfig(routes), strict, "101 nodes, more than the 100"},
		{"a file: bearer_token_file", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: https://example.com/\n    http_config:\n      bearer_token_file: /etc/passwd\n"), open, "bearer_token_file"},
		{"a file: tls ca_file", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: https://example.com/\n    http_config:\n      tls_config:\n        ca_file: /etc/ssl/key.pem\n"), open, "ca_file"},
		{"a file: global slack_api_url_file", withConfig("global:\n  slack_api_url_file: /var/run/secrets/token\nroute:\n  receiver: r\nreceivers:\n- name: r\n"), open, "slack_api_url_file"},
		{"a file: webhook url_file", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url_file: /etc/shadow\n"), open, "url_file"},
		{"a file behind an anchor", withConfig("global:\n  http_config: &h {password_file: /etc/passwd}\nroute:\n  receiver: r\nreceivers:\n- name: r\n"), open, "password_file"},
		{"templates globs", withConfig("templates: ['/etc/*']\nroute:\n  receiver: r\nreceivers:\n- name: r\n"), open, "not a key of template_files"},
		{"templates naming template_files", "template_files:\n  default_template: '{{ define \"x\" }}x{{ end }}'\n" + withConfig("global:\ntemplates:\n- 'default_template'\nroute:\n  receiver: r\nreceivers:\n- name: r\n"), strict, ""},
		{"a file behind an alias key", withConfig("route: {receiver: &k password_file}\nreceivers:\n- name: password_file\n  webhook_configs:\n  - url: https://example.com/x\n    http_config: {basic_auth: {username: u, *k : /etc/passwd}}\n"), open, "alias"},
		{"a file in http_headers", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: https://example.com/\n    http_config:\n      http_headers:\n        X-Exfil: {files: [/etc/passwd]}\n"), open, "files"},
		{"the process's proxy", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: https://example.com/\n    http_config: {proxy_from_environment: true}\n"), open, "proxy_from_environment"},
		{"NAT64 loopback", webhook("http://[64:ff9b::7f00:1]/"), strict, "is a private"},
		{"Slack, with its default icon links", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  slack_configs:\n  - api_url: https://hooks.slack.com/x\n    channel: c\n"), strict, ""},
		{"a receiver that cannot be built", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: https://example.com/\n    http_config:\n      tls_config: {ca: not a pem}\n"), open, "cannot be built"},
		{"a recursive template", "template_files:\n  t: '{{ define \"a\" }}{{ template \"a\" . }}{{ end }}'\n" + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, "calls itself"},
		{"a template bomb", bomb() + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, "template invocations"},
		{"a range over a number", "template_files:\n  t: '{{ define \"a\" }}{{ range 1000000000 }}x{{ end }}{{ end }}'\n" + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, "only ranges over the notification's data"},
		{"a range over a variable", "template_files:\n  t: '{{ define \"a\" }}{{ $n := 100000 }}{{ range $n }}{{ range $n }}y{{ end }}{{ end }}{{ end }}'\n" + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, "only ranges over the notification's data"},
		{"a range over a function's result", "template_files:\n  t: '{{ define \"a\" }}{{ range len .Alerts }}y{{ end }}{{ end }}'\n" + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, "only ranges over the notification's data"},
		{"ranges nested four deep", "template_files:\n  t: '{{ define \"a\" }}{{ range .Alerts }}{{ range .Alerts }}{{ range .Alerts }}{{ range .Alerts }}y{{ end }}{{ end }}{{ end }}{{ end }}{{ end }}'\n" + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, "nests ranges deeper than 3"},
		{"a name defined twice, checked as it runs", "template_files:\n  a: '{{ define \"x\" }}ok{{ end }}'\n  b: '{{ define \"x\" }}{{ template \"x\" . }}{{ end }}'\n" + withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n"), strict, "calls itself"},
		{"SNS without keys of its own", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n    sigv4: {region: us-east-2, role_arn: 'arn:aws:iam::222222222222:role/x'}\n"), strict, "need sigv4.access_key"},
		{"SNS assuming a role as the process", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n    sigv4: {region: us-east-2, role_arn: 'arn:aws:iam::222222222222:role/x'}\n"), &Egress{BlockPrivate: true, AllowSNSProcessCredentials: true}, "role_arn or external_id only with"},
		{"SNS with the process's credentials, allowed", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n    sigv4: {region: us-east-2}\n"), &Egress{BlockPrivate: true, AllowSNSProcessCredentials: true}, ""},
		{"tracing", withConfig("tracing:\n  endpoint: 10.0.0.1:4317\n  client_type: grpc\nroute:\n  receiver: r\nreceivers:\n- name: r\n"), open, "may not hold tracing"},
		{"the event recorder", withConfig("event_recorder:\n  file_outputs:\n  - path: /tmp/x\nroute:\n  receiver: r\nreceivers:\n- name: r\n"), open, "event_recorder"},
		{"file://", webhook("file:///etc/passwd"), open, `unsupported scheme "file"`},
		{"file:// for an OAuth2 token", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: https://example.com/\n    http_config:\n      oauth2: {client_id: a, client_secret: b, token_url: 'file:///etc/passwd'}\n"), open, "file:// URLs are not allowed"},
		{"an OAuth2 token on loopback", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: https://example.com/\n    http_config:\n      oauth2: {client_id: a, client_secret: b, token_url: 'http://127.0.0.1/token'}\n"), strict, "token_url"},
		{"loopback", webhook("http://127.0.0.1:9093/hook"), strict, "127.0.0.1 is a private"},
		{"localhost", webhook("http://localhost:9093/hook"), strict, "localhost is a loopback host"},
		{"IPv6 loopback", webhook("http://[::1]:9093/hook"), strict, "::1 is a private"},
		{"link-local metadata", webhook("http://169.254.169.254/latest/meta-data/"), strict, "169.254.169.254 is a private"},
		{"a private address", webhook("https://10.1.2.3/"), strict, "10.1.2.3 is a private"},
		{"IPv4-mapped loopback", webhook("http://[::ffff:127.0.0.1]/"), strict, "is a private"},
		{"a private address, allowed", webhook("http://127.0.0.1:9093/hook"), open, ""},
		{"a blocked CIDR", webhook("https://203.0.113.9/"), &Egress{BlockCIDRs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, "203.0.113.9 is a private"},
		{"a public host", webhook("https://hooks.example.com/x"), strict, ""},
		{"a proxy on loopback", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url: https://example.com/\n    http_config:\n      proxy_url: http://127.0.0.1:3128\n"), strict, "proxy_url"},
		{"smtp to loopback", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  email_configs:\n  - to: a@example.com\n    from: b@example.com\n    smarthost: 127.0.0.1:25\n"), strict, "smarthost"},
		{"SNS without region", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n"), strict, "sigv4.region"},
		{"SNS with a profile", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n    sigv4: {region: us-east-2, profile: prod, access_key: a, secret_key: b}\n"), strict, "sigv4.profile"},
		{"SNS with api_url", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n    api_url: https://sns.example.com\n    sigv4: {region: us-east-2, access_key: a, secret_key: b}\n"), strict, "may not name api_url"},
		{"SNS with api_url, allowed", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n    api_url: https://sns.example.com\n    sigv4: {region: us-east-2, access_key: a, secret_key: b}\n"), &Egress{BlockPrivate: true, AllowSNSAPIURL: true}, ""},
		{"SNS api_url on loopback, allowed but firewalled", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n    api_url: http://127.0.0.1:5000\n    sigv4: {region: us-east-2, access_key: a, secret_key: b}\n"), &Egress{BlockPrivate: true, AllowSNSAPIURL: true}, "127.0.0.1 is a private"},
		{"SNS through the SDK's own client", withConfig("route:\n  receiver: r\nreceivers:\n- name: r\n  sns_configs:\n  - topic_arn: arn:aws:sns:us-east-2:123456789012:T\n    use_aws_http_client: true\n    sigv4: {region: us-east-2, access_key: a, secret_key: b}\n"), strict, "use_aws_http_client"},
		{"over 1 MB", amp + "# " + strings.Repeat("x", 1<<20) + "\n", strict, "more than the 1048576 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.def), AMPLimits, tc.eg)
			if tc.refused == "" {
				require.NoError(t, err)
				return
			}
			var de *Error
			require.ErrorAs(t, err, &de)
			require.Contains(t, err.Error(), tc.refused)
		})
	}
}

// bomb is template_files whose last template expands to 2^20 invocations.
func bomb() string {
	out := "template_files:\n  t: |\n    {{ define \"a0\" }}x{{ end }}\n"
	for i := 1; i <= 20; i++ {
		out += fmt.Sprintf("    {{ define \"a%d\" }}{{ template \"a%d\" . }}{{ template \"a%d\" . }}{{ end }}\n", i, i-1, i-1)
	}
	return out
}

// A repeat_interval over 5 days is accepted and treated as 5 days (guide
// L3210), in the root route and below it.
func TestRepeatIntervalCappedAtFiveDays(t *testing.T) {
	l, err := Parse([]byte(withConfig("route:\n  receiver: r\n  repeat_interval: 10d\n  routes:\n  - matchers: [a=\"1\"]\n    repeat_interval: 30d\n  - matchers: [a=\"2\"]\n    repeat_interval: 1h\nreceivers:\n- name: r\n")), AMPLimits, &Egress{BlockPrivate: true})
	require.NoError(t, err)
	require.Equal(t, model.Duration(5*24*time.Hour), *l.Config.Route.RepeatInterval)
	require.Equal(t, model.Duration(5*24*time.Hour), *l.Config.Route.Routes[0].RepeatInterval)
	require.Equal(t, model.Duration(time.Hour), *l.Config.Route.Routes[1].RepeatInterval)
	require.True(t, RepeatIntervalOK(l.Config, 5*24*time.Hour))
}

// The definition's templates are parsed beside Alertmanager's defaults.
func TestTemplates(t *testing.T) {
	l, err := Parse([]byte(amp), AMPLimits, &Egress{BlockPrivate: true})
	require.NoError(t, err)
	out, err := l.Templates.ExecuteTextString(`{{ template "sns.default.message" . }}`, map[string]any{"CommonLabels": map[string]string{"alertname": "Down"}})
	require.NoError(t, err)
	require.Equal(t, "Down", out)
	out, err = l.Templates.ExecuteTextString(`{{ template "__alertmanager" . }}`, nil)
	require.NoError(t, err)
	require.Equal(t, "Alertmanager", out, "Alertmanager's default templates are there")
}

// The dialer refuses a blocked address once a name resolved to it: a
// host name the configuration check let through cannot reach loopback.
func TestDialerRefusesBlockedAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx := context.Background()

	_, err = (&Egress{BlockPrivate: true}).DialContext(ctx, "tcp", "localhost:"+port)
	require.ErrorContains(t, err, "receivers firewall")
	_, err = (&Egress{BlockCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}).DialContext(ctx, "tcp", "127.0.0.1:"+port)
	require.ErrorContains(t, err, "receivers firewall")
	c, err := (&Egress{}).DialContext(ctx, "tcp", "127.0.0.1:"+port)
	require.NoError(t, err)
	c.Close()
}
