package apierror

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryIDHasARunbookEntry: every stable error ID declared here has its
// row in docs/errors.md.
func TestEveryIDHasARunbookEntry(t *testing.T) {
	doc, err := os.ReadFile("../../docs/errors.md")
	require.NoError(t, err)
	f, err := parser.ParseFile(token.NewFileSet(), "apierror.go", nil, 0)
	require.NoError(t, err)
	ids := 0
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Names) != 1 || !strings.HasPrefix(spec.Names[0].Name, "ID") || len(spec.Values) != 1 {
			return true
		}
		lit, ok := spec.Values[0].(*ast.BasicLit)
		if !ok {
			return true
		}
		id, err := strconv.Unquote(lit.Value)
		require.NoError(t, err)
		ids++
		require.True(t, strings.Contains(string(doc), "`"+id+"`"), "%s (%s) has no entry in docs/errors.md", spec.Names[0].Name, id)
		return true
	})
	require.Greater(t, ids, 40)
}
