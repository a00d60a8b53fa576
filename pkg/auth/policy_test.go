package auth

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	wsA  = "arn:aws:aps:us-east-1:111122223333:workspace/ws-a"
	wsB  = "arn:aws:aps:us-east-1:444455556666:workspace/ws-b"
	acct = "111122223333"
)

func mustPolicy(t *testing.T, doc string, resource bool) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(doc), resource)
	require.NoError(t, err)
	return p
}

func TestPolicyEvaluation(t *testing.T) {
	alice := Identity{Account: acct, User: "alice"}
	for _, tc := range []struct {
		name   string
		policy string
		req    Request
		want   Effect
	}{
		{"action and resource", `{"Statement":{"Effect":"Allow","Action":"aps:RemoteWrite","Resource":"` + wsA + `"}}`,
			Request{Action: "aps:RemoteWrite", Resource: wsA}, Allowed},
		{"actions are case-insensitive", `{"Statement":{"Effect":"Allow","Action":"APS:remotewrite","Resource":"*"}}`,
			Request{Action: "aps:RemoteWrite", Resource: wsA}, Allowed},
		{"resources are case-sensitive", `{"Statement":{"Effect":"Allow","Action":"aps:*","Resource":"arn:aws:aps:us-east-1:111122223333:workspace/WS-A"}}`,
			Request{Action: "aps:RemoteWrite", Resource: wsA}, NoMatch},
		{"other action", `{"Statement":{"Effect":"Allow","Action":"aps:RemoteWrite","Resource":"*"}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA}, NoMatch},
		{"action wildcard", `{"Statement":{"Effect":"Allow","Action":"aps:Get*","Resource":"*"}}`,
			Request{Action: "aps:GetSeries", Resource: wsA}, Allowed},
		{"question mark", `{"Statement":{"Effect":"Allow","Action":"aps:*","Resource":"arn:aws:aps:us-east-1:111122223333:workspace/ws-?"}}`,
			Request{Action: "aps:GetSeries", Resource: wsA}, Allowed},
		{"deny wins", `{"Statement":[{"Effect":"Allow","Action":"aps:*","Resource":"*"},{"Effect":"Deny","Action":"aps:DeleteWorkspace","Resource":"*"}]}`,
			Request{Action: "aps:DeleteWorkspace", Resource: wsA}, Denied},
		{"NotAction", `{"Statement":{"Effect":"Allow","NotAction":"aps:Delete*","Resource":"*"}}`,
			Request{Action: "aps:DeleteWorkspace", Resource: wsA}, NoMatch},
		{"NotAction allows the rest", `{"Statement":{"Effect":"Allow","NotAction":"aps:Delete*","Resource":"*"}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA}, Allowed},
		{"NotResource", `{"Statement":{"Effect":"Deny","Action":"*","NotResource":"` + wsA + `"}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsB}, Denied},
		{"resource tag", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"red"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, ResourceTags: map[string]string{"team": "red"}}, Allowed},
		{"resource tag other value", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"red"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, ResourceTags: map[string]string{"team": "blue"}}, NoMatch},
		{"resource tag missing", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"red"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA}, NoMatch},
		{"tag key case-insensitive", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/Team":"red"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, ResourceTags: map[string]string{"team": "red"}}, Allowed},
		{"tag value case-sensitive", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"RED"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, ResourceTags: map[string]string{"team": "red"}}, NoMatch},
		{"StringNotEquals on a missing key holds", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:ResourceTag/team":"red"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA}, Denied},
		{"StringLike", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"aws:RequestTag/env":["prod-*","stage"]}}}}`,
			Request{Action: "aps:CreateWorkspace", Resource: wsA, RequestTags: map[string]string{"env": "prod-eu"}}, Allowed},
		{"ArnLike", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/a*"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, Principal: alice}, Allowed},
		{"SecureTransport false", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA}, Denied},
		{"SecureTransport true", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, Secure: true}, NoMatch},
		{"SourceIp in", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, SourceIP: netip.MustParseAddr("10.1.2.3")}, Allowed},
		{"SourceIp out", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.1.1"]}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, SourceIP: netip.MustParseAddr("192.168.1.2")}, NoMatch},
		{"SourceIp v4 in v6", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, SourceIP: netip.MustParseAddr("::ffff:127.0.0.1")}, Allowed},
		{"NotIpAddress", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, SourceIP: netip.MustParseAddr("8.8.8.8")}, Denied},
		{"ForAllValues TagKeys within", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}}}`,
			Request{Action: "aps:TagResource", Resource: wsA, TagKeys: []string{"env"}}, Allowed},
		{"ForAllValues TagKeys outside", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}}}`,
			Request{Action: "aps:TagResource", Resource: wsA, TagKeys: []string{"env", "owner"}}, NoMatch},
		{"ForAnyValue TagKeys", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":"owner"}}}}`,
			Request{Action: "aps:UntagResource", Resource: wsA, TagKeys: []string{"env", "owner"}}, Denied},
		{"ForAnyValue no keys", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":"owner"}}}}`,
			Request{Action: "aps:UntagResource", Resource: wsA}, NoMatch},
		{"IfExists on a missing key", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:ResourceTag/team":"red"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA}, Allowed},
		{"Null", `{"Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Null":{"aws:RequestTag/team":"true"}}}}`,
			Request{Action: "aps:CreateWorkspace", Resource: wsA}, Denied},
		{"two keys are AND", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"red","aws:ResourceTag/env":"prod"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA, ResourceTags: map[string]string{"team": "red"}}, NoMatch},
		{"unknown key is missing", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:Whatever":"x"}}}}`,
			Request{Action: "aps:QueryMetrics", Resource: wsA}, NoMatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, tc.policy, false)
			if tc.req.Principal.Account == "" {
				tc.req.Principal = alice
			}
			require.Equal(t, tc.want, p.Evaluate(&tc.req))
		})
	}
}

func TestWildcard(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "a", true}, {"a*c", "abbbc", true}, {"a*c", "abbb", false},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"*:*:*", "x:y:z", true}, {"**a", "bba", true},
		{"a*b*c", "aXbYbZc", true}, {"", "", true}, {"", "a", false},
	} {
		require.Equal(t, tc.want, Wildcard(tc.p, tc.s, false), "%q %q", tc.p, tc.s)
	}
	// Adversarial patterns stay fast.
	long := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"
	require.False(t, Wildcard("*a*a*a*a*a*a*a*a*a*a*a*a*c", long, false))
}

func TestAuthorizeAcrossAccounts(t *testing.T) {
	full, err := ManagedPolicy(FullAccess)
	require.NoError(t, err)
	writeOnly, err := ManagedPolicy("AmazonPrometheusRemoteWriteAccess")
	require.NoError(t, err)
	owner := "444455556666"
	grant := mustPolicy(t, `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:RemoteWrite","Resource":"`+wsB+`"}}`, true)
	grantUser := mustPolicy(t, `{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"aps:RemoteWrite","Resource":"`+wsB+`"}}`, true)
	alice := Identity{Account: acct, User: "alice"}
	for _, tc := range []struct {
		name     string
		identity []*Policy
		resource *Policy
		action   string
		want     bool
	}{
		{"own account, identity allows", []*Policy{writeOnly}, nil, "aps:RemoteWrite", true},
		{"other account without a resource policy", []*Policy{full}, nil, "aps:RemoteWrite", false},
		{"other account, both allow", []*Policy{writeOnly}, grant, "aps:RemoteWrite", true},
		{"other account, resource allows another action only", []*Policy{full}, grant, "aps:QueryMetrics", false},
		{"other account, identity does not allow", nil, grant, "aps:RemoteWrite", false},
		{"other account, another user named", []*Policy{full}, grantUser, "aps:RemoteWrite", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resourceAccount, arn := owner, wsB
			if tc.resource == nil && tc.name == "own account, identity allows" {
				resourceAccount, arn = acct, wsA
			}
			req := &Request{Action: tc.action, Resource: arn, Principal: alice}
			d := Authorize(tc.identity, tc.resource, resourceAccount, req)
			require.Equal(t, tc.want, d.Allowed, d.Reason)
			if !d.Allowed {
				require.Contains(t, DeniedMessage(req, d), "is not authorized to perform: "+tc.action)
			}
		})
	}
	// Within the account, a resource policy naming the account delegates to
	// the users' identity policies; naming the user grants.
	ownGrant := mustPolicy(t, `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:QueryMetrics","Resource":"`+wsA+`"}}`, true)
	d := Authorize([]*Policy{writeOnly}, ownGrant, acct, &Request{Action: "aps:QueryMetrics", Resource: wsA, Principal: alice})
	require.False(t, d.Allowed, "an account principal is no grant to each of its users")
	userGrant := mustPolicy(t, `{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"aps:QueryMetrics","Resource":"`+wsA+`"}}`, true)
	d = Authorize([]*Policy{writeOnly}, userGrant, acct, &Request{Action: "aps:QueryMetrics", Resource: wsA, Principal: alice})
	require.True(t, d.Allowed, d.Reason)
	ownDeny := mustPolicy(t, `{"Statement":{"Effect":"Deny","Principal":{"AWS":"111122223333"},"Action":"aps:RemoteWrite","Resource":"`+wsA+`"}}`, true)
	d = Authorize([]*Policy{writeOnly}, ownDeny, acct, &Request{Action: "aps:RemoteWrite", Resource: wsA, Principal: alice})
	require.False(t, d.Allowed, "a Deny naming the account applies to its users")

	deny := mustPolicy(t, `{"Statement":{"Effect":"Deny","Action":"aps:*","Resource":"*"}}`, false)
	d = Authorize([]*Policy{full, deny}, nil, acct, &Request{Action: "aps:QueryMetrics", Resource: wsA, Principal: alice})
	require.False(t, d.Allowed)
	require.Contains(t, d.Reason, "explicit deny")
}

func TestResourcePolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		name, doc, err string
	}{
		{"ok", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["111122223333"]},"Action":["aps:RemoteWrite","aps:QueryMetrics"],"Resource":"` + wsB + `"}]}`, ""},
		{"Get wildcard reaches a control-plane action", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:Get*","Resource":"` + wsB + `"}}`, "cannot be granted"},
		{"wildcard reaching DeleteResourcePolicy", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:*et*es*","Resource":"` + wsB + `"}}`, "cannot be granted"},
		{"wildcard reaching DescribeWorkspaceConfiguration", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:*ri*t*","Resource":"` + wsB + `"}}`, "cannot be granted"},
		{"action of another service", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"s3:GetObject","Resource":"` + wsB + `"}}`, "cannot be granted"},
		{"Query wildcard", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:Query*","Resource":"` + wsB + `"}}`, ""},
		{"everything", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:*","Resource":"` + wsB + `"}}`, "cannot be granted"},
		{"control plane", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:DeleteWorkspace","Resource":"` + wsB + `"}}`, "cannot be granted"},
		{"anyone", `{"Statement":{"Effect":"Allow","Principal":"*","Action":"aps:RemoteWrite","Resource":"` + wsB + `"}}`, "must name an account"},
		{"wildcard principal", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::*:root"},"Action":"aps:RemoteWrite","Resource":"` + wsB + `"}}`, "not an account ID"},
		{"other workspace", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:RemoteWrite","Resource":"` + wsA + `"}}`, "is not this workspace"},
		{"resource wildcard", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:RemoteWrite","Resource":"*"}}`, "is not this workspace"},
		{"NotAction", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"NotAction":"aps:DeleteWorkspace","Resource":"` + wsB + `"}}`, "not allowed in a resource policy"},
		{"no principal", `{"Statement":{"Effect":"Allow","Action":"aps:RemoteWrite","Resource":"` + wsB + `"}}`, "needs a Principal"},
		{"not JSON", `{"Statement":`, "not valid"},
		{"unknown field", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:RemoteWrite","Resource":"` + wsB + `","Extra":1}}`, "unknown field"},
		{"bad version", `{"Version":"2099-01-01","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"aps:RemoteWrite","Resource":"` + wsB + `"}}`, "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ValidateResourcePolicy([]byte(tc.doc), wsB)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"Statement":{"Effect":"Allow","Action":"aps:*","Resource":"*","Condition":{"ForAllValues:StringLike":{"aws:TagKeys":["a*"]}}}}`))
	f.Add([]byte(`{"Statement":[{"Effect":"Deny","Principal":{"AWS":["111122223333"]},"NotAction":"x","Resource":"*"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, resource := range []bool{false, true} {
			p, err := ParsePolicy(doc, resource)
			if err != nil {
				continue
			}
			p.Evaluate(&Request{Action: "aps:RemoteWrite", Resource: wsA, Principal: Identity{Account: acct, User: "u"},
				ResourceTags: map[string]string{"a": "b"}, TagKeys: []string{"a"}, SourceIP: netip.MustParseAddr("10.0.0.1")})
		}
	})
}
