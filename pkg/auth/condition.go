package auth

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// condition is one key of one operator of a statement's Condition block.
type condition struct {
	op       string // base operator, e.g. "stringlike"
	key      string // lower-cased condition key
	values   []string
	prefixes []netip.Prefix // IpAddress / NotIpAddress
	negated  bool
	ifExists bool
	set      int // 0: single-valued, setAny: ForAnyValue, setAll: ForAllValues
}

const (
	setAny = 1
	setAll = 2
)

// operators are the supported condition operators (lower-cased, without
// set prefix and IfExists suffix); true marks the negated ones.
var operators = map[string]bool{
	"stringequals": false, "stringnotequals": true,
	"stringequalsignorecase": false, "stringnotequalsignorecase": true,
	"stringlike": false, "stringnotlike": true,
	"arnequals": false, "arnnotequals": true,
	"arnlike": false, "arnnotlike": true,
	"bool":      false,
	"ipaddress": false, "notipaddress": true,
	"null": false,
}

func parseCondition(op, key string, raw json.RawMessage) (condition, error) {
	c := condition{key: strings.ToLower(key)}
	name := strings.ToLower(op)
	if rest, ok := strings.CutPrefix(name, "foranyvalue:"); ok {
		c.set, name = setAny, rest
	} else if rest, ok := strings.CutPrefix(name, "forallvalues:"); ok {
		c.set, name = setAll, rest
	}
	if rest, ok := strings.CutSuffix(name, "ifexists"); ok && name != "null" {
		c.ifExists, name = true, rest
	}
	negated, ok := operators[name]
	if !ok {
		return c, fmt.Errorf("condition operator %q is not supported", op)
	}
	c.op, c.negated = name, negated
	vals, err := stringList(raw, "condition "+op+" "+key)
	if err != nil {
		return c, err
	}
	c.values = vals
	switch name {
	case "ipaddress", "notipaddress":
		for _, v := range vals {
			pfx, err := netip.ParsePrefix(v)
			if err != nil {
				a, aerr := netip.ParseAddr(v)
				if aerr != nil {
					return c, fmt.Errorf("condition %s %s: %q is not an IP address or CIDR", op, key, v)
				}
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
			c.prefixes = append(c.prefixes, pfx.Masked())
		}
	case "bool", "null":
		for _, v := range vals {
			if _, err := strconv.ParseBool(v); err != nil {
				return c, fmt.Errorf("condition %s %s: %q is not true or false", op, key, v)
			}
		}
	}
	return c, nil
}

// contextValues returns the request's values of a condition key; ok is
// false when the request does not carry the key.
func contextValues(req *Request, key string) (vals []string, ok bool) {
	switch {
	case key == "aws:tagkeys":
		return req.TagKeys, req.TagKeys != nil
	case key == "aws:sourceip":
		if !req.SourceIP.IsValid() {
			return nil, false
		}
		return []string{req.SourceIP.String()}, true
	case key == "aws:securetransport":
		return []string{strconv.FormatBool(req.Secure)}, true
	case key == "aws:principalaccount":
		return []string{req.Principal.Account}, true
	case key == "aws:principalarn":
		return []string{req.Principal.ARN()}, true
	case key == "aws:username":
		return []string{req.Principal.User}, true
	case strings.HasPrefix(key, "aws:resourcetag/"):
		return tagValue(req.ResourceTags, key[len("aws:resourcetag/"):])
	case strings.HasPrefix(key, "aws:requesttag/"):
		return tagValue(req.RequestTags, key[len("aws:requesttag/"):])
	}
	return nil, false
}

// tagValue finds a tag by key, case-insensitively as IAM matches condition
// keys. Where keys differing only in case are both present (env and ENV),
// the smallest key wins, so that the answer never depends on map order.
func tagValue(tags map[string]string, lowerKey string) ([]string, bool) {
	best, found := "", false
	for k := range tags {
		if strings.ToLower(k) == lowerKey && (!found || k < best) {
			best, found = k, true
		}
	}
	if !found {
		return nil, false
	}
	return []string{tags[best]}, true
}

// holds evaluates the condition against the request.
func (c *condition) holds(req *Request) bool {
	vals, present := contextValues(req, c.key)
	if c.op == "null" {
		want, _ := strconv.ParseBool(c.values[0])
		return want == (!present || len(vals) == 0)
	}
	if !present || len(vals) == 0 {
		switch {
		case c.set == setAll:
			return true // IAM: ForAllValues over no values holds
		case c.set == setAny:
			return false
		case c.ifExists, c.negated:
			return true
		default:
			return false
		}
	}
	if c.set == setAll {
		for _, v := range vals {
			if !c.valueHolds(v) {
				return false
			}
		}
		return true
	}
	for _, v := range vals {
		if c.valueHolds(v) {
			return true
		}
	}
	return false
}

// valueHolds evaluates the operator for one request value: for a negated
// operator, that the value matches none of the condition's values.
func (c *condition) valueHolds(v string) bool {
	matched := false
	switch c.op {
	case "ipaddress", "notipaddress":
		a, err := netip.ParseAddr(v)
		if err != nil {
			return false
		}
		for _, p := range c.prefixes {
			if p.Contains(a.Unmap()) {
				matched = true
				break
			}
		}
	default:
		for _, want := range c.values {
			if c.match(want, v) {
				matched = true
				break
			}
		}
	}
	return matched != c.negated
}

func (c *condition) match(want, v string) bool {
	switch c.op {
	case "stringequals", "stringnotequals":
		return want == v
	case "stringequalsignorecase", "stringnotequalsignorecase":
		return strings.EqualFold(want, v)
	case "stringlike", "stringnotlike", "arnlike", "arnnotlike", "arnequals", "arnnotequals":
		// IAM's ArnEquals takes wildcards as ArnLike does.
		return Wildcard(want, v, false)
	case "bool":
		a, _ := strconv.ParseBool(want)
		b, err := strconv.ParseBool(v)
		return err == nil && a == b
	}
	return false
}
