package controlplane

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckShapes: a rules file is refused before it is parsed when a
// rule's expression, or a string in its labels' or annotations' templates
// (which {{ query }} would parse at every evaluation), is nested or chained
// beyond a rule's bounds; ordinary templates pass.
func TestCheckShapes(t *testing.T) {
	chain := strings.Repeat("up + ", 2000) + "up"
	deep := strings.Repeat("(", 200) + "up" + strings.Repeat(")", 200)
	file := func(rule string) []byte {
		return []byte("groups:\n  - name: g\n    rules:\n" + rule)
	}
	for _, tc := range []struct {
		name string
		rule string
		ok   bool
	}{
		{"modest expression", "      - record: r\n        expr: sum(up) by (job)\n", true},
		{"chained expression", "      - record: r\n        expr: " + chain + "\n", false},
		{"deep expression", "      - record: r\n        expr: " + deep + "\n", false},
		{"modest template query", "      - alert: A\n        expr: up == 0\n        annotations:\n          s: '{{ with query \"sum(up)\" }}{{ . | first | value }}{{ end }}'\n", true},
		{"text with many dashes, outside strings", "      - alert: A\n        expr: up == 0\n        annotations:\n          s: '" + strings.Repeat("- ", 3000) + "{{ $value }}'\n", true},
		{"chained query in an annotation", "      - alert: A\n        expr: up == 0\n        annotations:\n          s: '{{ query \"" + chain + "\" }}'\n", false},
		{"chained query piped, in a label", "      - alert: A\n        expr: up == 0\n        labels:\n          l: '{{ \"" + chain + "\" | query }}'\n", false},
		{"deep query inside a range", "      - alert: A\n        expr: up == 0\n        annotations:\n          s: '{{ range $i := query \"up\" }}{{ query \"" + deep + "\" }}{{ end }}'\n", false},
		{"chained query in a define", "      - alert: A\n        expr: up == 0\n        annotations:\n          s: '{{ define \"x\" }}{{ query \"" + chain + "\" }}{{ end }}ok'\n", false},
		{"chained query as a variable", "      - alert: A\n        expr: up == 0\n        annotations:\n          s: '{{ $q := \"" + chain + "\" }}{{ query $q }}'\n", false},
		{"chained query in a chain node", "      - alert: A\n        expr: up == 0\n        annotations:\n          s: '{{ (query \"" + chain + "\").Foo }}'\n", false},
		{"template that does not parse: left to Prometheus's check", "      - alert: A\n        expr: up == 0\n        annotations:\n          s: '{{ query '\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkShapes(file(tc.rule))
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "binary operators")
		})
	}
}
