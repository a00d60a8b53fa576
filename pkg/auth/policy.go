package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxPolicySize bounds a policy document, as IAM bounds inline policies.
const maxPolicySize = 10 * 1024

// Effect of a matching statement.
type Effect int

// Evaluation results: no statement applies, an Allow applies, or a Deny
// applies (which wins over every Allow).
const (
	NoMatch Effect = iota
	Allowed
	Denied
)

// Policy is a compiled IAM policy document: an identity policy (statements
// without Principal) or a resource policy (statements with one).
type Policy struct {
	statements []statement
	resource   bool
}

type statement struct {
	deny bool
	// notAction / notResource: the lists name what the statement does NOT
	// apply to.
	actions, resources     []string
	notAction, notResource bool
	principals             []string // resource policies: "*", account root or user ARNs
	conditions             []condition
}

// Request is what a policy is evaluated against: one action on one resource
// by one identity, and the condition keys the request carries.
type Request struct {
	Action    string // "aps:RemoteWrite"
	Resource  string // an ARN
	Principal Identity

	ResourceTags map[string]string // aws:ResourceTag/<key>
	RequestTags  map[string]string // aws:RequestTag/<key>
	TagKeys      []string          // aws:TagKeys
	SourceIP     netip.Addr        // aws:SourceIp
	Secure       bool              // aws:SecureTransport
}

// ParsePolicy compiles an IAM policy document (JSON). resource says whether
// it is a resource policy, whose statements must name a Principal, rather
// than an identity policy, whose statements must not.
func ParsePolicy(doc []byte, resource bool) (*Policy, error) {
	if len(doc) > maxPolicySize {
		return nil, fmt.Errorf("policy document is larger than %d bytes", maxPolicySize)
	}
	var raw struct {
		Version   string          `json:"Version"`
		ID        string          `json:"Id"`
		Statement json.RawMessage `json:"Statement"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("policy document is not valid: %w", err)
	}
	if raw.Version != "" && raw.Version != "2012-10-17" && raw.Version != "2008-10-17" {
		return nil, fmt.Errorf("policy Version %q is not supported (use 2012-10-17)", raw.Version)
	}
	var rawStmts []json.RawMessage
	if t := bytes.TrimSpace(raw.Statement); len(t) > 0 && t[0] == '{' {
		rawStmts = []json.RawMessage{raw.Statement}
	} else if err := json.Unmarshal(raw.Statement, &rawStmts); err != nil || len(rawStmts) == 0 {
		return nil, fmt.Errorf("policy needs a Statement: one object or a non-empty list")
	}
	p := &Policy{resource: resource}
	for i, rs := range rawStmts {
		st, err := parseStatement(rs, resource)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i, err)
		}
		p.statements = append(p.statements, st)
	}
	return p, nil
}

func parseStatement(b []byte, resource bool) (statement, error) {
	var raw struct {
		Sid          string                                `json:"Sid"`
		Effect       string                                `json:"Effect"`
		Action       json.RawMessage                       `json:"Action"`
		NotAction    json.RawMessage                       `json:"NotAction"`
		Resource     json.RawMessage                       `json:"Resource"`
		NotResource  json.RawMessage                       `json:"NotResource"`
		Principal    json.RawMessage                       `json:"Principal"`
		NotPrincipal json.RawMessage                       `json:"NotPrincipal"`
		Condition    map[string]map[string]json.RawMessage `json:"Condition"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return statement{}, err
	}
	var st statement
	switch raw.Effect {
	case "Allow":
	case "Deny":
		st.deny = true
	default:
		return st, fmt.Errorf("Effect must be Allow or Deny, got %q", raw.Effect)
	}
	var err error
	if st.actions, st.notAction, err = eitherList(raw.Action, raw.NotAction, "Action"); err != nil {
		return st, err
	}
	if st.resources, st.notResource, err = eitherList(raw.Resource, raw.NotResource, "Resource"); err != nil {
		return st, err
	}
	if raw.NotPrincipal != nil {
		return st, fmt.Errorf("NotPrincipal is not supported")
	}
	switch {
	case resource && raw.Principal == nil:
		return st, fmt.Errorf("a resource policy statement needs a Principal")
	case !resource && raw.Principal != nil:
		return st, fmt.Errorf("an identity policy statement cannot have a Principal")
	case resource:
		if st.principals, err = parsePrincipal(raw.Principal); err != nil {
			return st, err
		}
	}
	for op, keys := range raw.Condition {
		for key, vals := range keys {
			c, err := parseCondition(op, key, vals)
			if err != nil {
				return st, err
			}
			st.conditions = append(st.conditions, c)
		}
	}
	return st, nil
}

// eitherList reads exactly one of a list and its Not form.
func eitherList(list, notList json.RawMessage, name string) ([]string, bool, error) {
	switch {
	case list != nil && notList != nil:
		return nil, false, fmt.Errorf("%s and Not%s cannot both be set", name, name)
	case list == nil && notList == nil:
		return nil, false, fmt.Errorf("%s or Not%s is required", name, name)
	case notList != nil:
		l, err := stringList(notList, "Not"+name)
		return l, true, err
	default:
		l, err := stringList(list, name)
		return l, false, err
	}
}

// stringList reads a string or a non-empty list of strings (JSON booleans
// and numbers are taken as their text, as IAM does in conditions).
func stringList(b json.RawMessage, name string) ([]string, error) {
	var one any
	if err := json.Unmarshal(b, &one); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	scalar := func(v any) (string, bool) {
		switch v := v.(type) {
		case string:
			return v, true
		case bool:
			return strconv.FormatBool(v), true
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64), true
		}
		return "", false
	}
	if s, ok := scalar(one); ok {
		return []string{s}, nil
	}
	list, ok := one.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("%s must be a string or a non-empty list of strings", name)
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, ok := scalar(v)
		if !ok {
			return nil, fmt.Errorf("%s must be a string or a non-empty list of strings", name)
		}
		out = append(out, s)
	}
	return out, nil
}

// parsePrincipal reads "*" or {"AWS": <account ID | ARN | list>}; account
// IDs become their root ARNs.
func parsePrincipal(b json.RawMessage) ([]string, error) {
	var star string
	if json.Unmarshal(b, &star) == nil {
		if star != "*" {
			return nil, fmt.Errorf(`Principal must be "*" or {"AWS": ...}`)
		}
		return []string{"*"}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 || m["AWS"] == nil {
		return nil, fmt.Errorf(`Principal must be "*" or {"AWS": ...}`)
	}
	list, err := stringList(m["AWS"], "Principal")
	if err != nil {
		return nil, err
	}
	for i, p := range list {
		switch {
		case p == "*":
		case accountIDRe.MatchString(p):
			list[i] = RootARN(p)
		case strings.HasPrefix(p, "arn:aws:iam::"):
			acct, _, ok := strings.Cut(strings.TrimPrefix(p, "arn:aws:iam::"), ":")
			if !ok || !accountIDRe.MatchString(acct) {
				return nil, fmt.Errorf("Principal %q is not an account ID or an IAM ARN", p)
			}
		default:
			return nil, fmt.Errorf("Principal %q is not an account ID or an IAM ARN", p)
		}
	}
	return list, nil
}

// RootARN is the ARN naming a whole account as a principal.
func RootARN(account string) string { return "arn:aws:iam::" + account + ":root" }

// ARN is the identity's IAM user ARN.
func (id Identity) ARN() string { return "arn:aws:iam::" + id.Account + ":user/" + id.User }

// Evaluate returns Denied when a Deny statement applies to req, Allowed
// when an Allow does and no Deny, and NoMatch otherwise.
func (p *Policy) Evaluate(req *Request) Effect { return p.evaluate(req, false) }

// evaluate is Evaluate; userOnly counts a resource policy's Allow only
// where it names the caller's user ARN, not its account: within an
// account, IAM takes an account-root principal as a delegation to the
// account's identity policies, not as a grant to every user.
func (p *Policy) evaluate(req *Request, userOnly bool) Effect {
	if p == nil {
		return NoMatch
	}
	out := NoMatch
	for i := range p.statements {
		st := &p.statements[i]
		if !st.applies(req, p.resource) {
			continue
		}
		if userOnly && !st.deny && !slices.Contains(st.principals, req.Principal.ARN()) {
			continue
		}
		if st.deny {
			return Denied
		}
		out = Allowed
	}
	return out
}

// Principals tells whether any statement of a resource policy names the
// account or one of its users: whether the account was given any access.
func (p *Policy) Principals(account string) bool {
	if p == nil {
		return false
	}
	for _, st := range p.statements {
		for _, pr := range st.principals {
			if pr == "*" || strings.HasPrefix(pr, "arn:aws:iam::"+account+":") {
				return true
			}
		}
	}
	return false
}

func (st *statement) applies(req *Request, resource bool) bool {
	if anyMatch(st.actions, req.Action, true) == st.notAction {
		return false
	}
	if anyMatch(st.resources, req.Resource, false) == st.notResource {
		return false
	}
	if resource && !principalMatch(st.principals, req.Principal) {
		return false
	}
	for i := range st.conditions {
		if !st.conditions[i].holds(req) {
			return false
		}
	}
	return true
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if Wildcard(p, s, fold) {
			return true
		}
	}
	return false
}

func principalMatch(principals []string, id Identity) bool {
	for _, p := range principals {
		if p == "*" || p == RootARN(id.Account) || p == id.ARN() {
			return true
		}
	}
	return false
}

// Wildcard matches s against an IAM pattern, where * matches any run of
// characters and ? any one; fold compares ASCII letters case-insensitively
// (actions).
func Wildcard(pattern, s string, fold bool) bool {
	eq := func(a, b byte) bool {
		if a == b {
			return true
		}
		if !fold {
			return false
		}
		return lowerASCII(a) == lowerASCII(b)
	}
	// Iterative matching with one backtrack point: linear in practice,
	// never exponential.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || (pattern[p] != '*' && eq(pattern[p], s[i]))):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
