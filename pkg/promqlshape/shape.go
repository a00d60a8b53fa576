// Package promqlshape measures a PromQL expression's shape (nesting,
// binary operators, string literals) in one pass, before it is parsed:
// Prometheus's parser takes time that grows with the square of a chain of
// binary operators, and with nesting, so whatever parses untrusted
// expressions (queries, rules files) bounds their shape first.
package promqlshape

import "strings"

// Shape is what one pass over an expression, before it is parsed, tells.
type Shape struct {
	// Depth is how deeply it nests parentheses, brackets and braces.
	Depth int
	// Longest is the length of its longest string literal (quotes and
	// escapes included).
	Longest int
	// Operators counts its binary operators (outside strings, comments and
	// label matchers; a unary minus or an exponent's sign counts too).
	Operators int
}

// Bounds of an expression a rule evaluates (its expr, or a query its
// templates run), checked before it is parsed: every ruler parses a rules
// file's expressions again, and its templates' queries at every evaluation.
const (
	MaxRuleDepth     = 128
	MaxRuleOperators = 1024
)

// RuleTooComplex reports whether expr nests deeper or chains more binary
// operators than a rule's expression may.
func RuleTooComplex(expr string) bool {
	sh := Scan(expr, MaxRuleDepth)
	return sh.Depth > MaxRuleDepth || sh.Operators > MaxRuleOperators
}

// binaryKeywords are PromQL's binary operators spelt as words.
var binaryKeywords = []string{"and", "or", "unless", "atan2"}

// Scan scans expr outside string literals and comments, in one
// pass without allocation, counting its nesting no further than past
// depthLimit (0: no limit).
func Scan(expr string, depthLimit int) Shape {
	var sc Shape
	depth, braces := 0, 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case c == '(' || c == '[' || c == '{':
			depth++
			if c == '{' {
				braces++
			}
			if depth > sc.Depth {
				sc.Depth = depth
				if depthLimit > 0 && sc.Depth > depthLimit {
					return sc
				}
			}
		case c == ')' || c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
			if c == '}' && braces > 0 {
				braces--
			}
		case c == '"' || c == '\'' || c == '`':
			// A string: to its closing quote; backslashes escape in the
			// first two kinds.
			start := i
			for i++; i < len(expr) && expr[i] != c; i++ {
				if expr[i] == '\\' && c != '`' {
					i++
				}
			}
			sc.Longest = max(sc.Longest, min(i, len(expr)-1)-start+1)
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case braces > 0:
			// Label matchers: their =, !=, =~ and !~ are no operators.
		case c == '+' || c == '-' || c == '*' || c == '/' || c == '%' || c == '^' || c == '>' || c == '<':
			sc.Operators++
			if i+1 < len(expr) && expr[i+1] == '=' {
				i++ // >=, <=
			}
		case (c == '=' || c == '!') && i+1 < len(expr) && expr[i+1] == '=':
			sc.Operators++
			i++
		case c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			start := i
			for i+1 < len(expr) && isNameByte(expr[i+1]) {
				i++
			}
			for _, k := range binaryKeywords {
				if strings.EqualFold(expr[start:i+1], k) {
					sc.Operators++
				}
			}
		}
	}
	return sc
}

func isNameByte(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
