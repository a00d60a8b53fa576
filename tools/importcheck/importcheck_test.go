package importcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/vigil-metrics/vigil/"

// leaves may be imported by any package: they hold no component logic.
var leaves = []string{"pkg/apierror", "pkg/tenant", "pkg/logging", "pkg/subservices", "pkg/promqlshape", "pkg/slots", "pkg/promapi", "internal/bench"}

// allowed lists, per package (or package prefix ending in /), the Vigil
// packages it may import besides the leaves. A package missing from the
// table fails the test, so a new package must be placed deliberately.
var allowed = map[string][]string{
	"cmd/vigil":                   {"pkg/vigil"},
	"pkg/vigil":                   {"*"},
	"pkg/api":                     {"pkg/auth", "pkg/inflight", "pkg/pb/remotewrite", "pkg/push"},
	"pkg/push":                    nil,
	"pkg/inflight":                nil,
	"pkg/apierror":                nil,
	"pkg/auth":                    nil,
	"pkg/audit":                   nil,
	"pkg/tenant":                  nil,
	"pkg/logging":                 nil,
	"pkg/subservices":             nil,
	"pkg/promqlshape":             nil,
	"pkg/slots":                   nil,
	"pkg/promapi":                 {"pkg/logging"},
	"pkg/limits":                  nil,
	"pkg/compactor":               {"pkg/storage/", "pkg/limits", "pkg/ringmember"},
	"pkg/controlplane":            {"pkg/storage/bucket", "pkg/limits", "pkg/ringmember", "pkg/auth", "pkg/alertmanager/definition"},
	"pkg/alertmanager/definition": nil,
	"pkg/alertmanager":            {"pkg/alertmanager/definition", "pkg/limits", "pkg/ringmember"},
	"pkg/distributor":             {"pkg/ingester/client", "pkg/limits", "pkg/pb/", "pkg/push", "pkg/ringmember"},
	"pkg/ingester":                {"pkg/storage/", "pkg/limits", "pkg/pb/", "pkg/ingester/client", "pkg/ringmember"},
	"pkg/ingester/client":         {"pkg/pb/", "pkg/ringmember"},
	"pkg/querylog":                nil,
	"pkg/ruler":                   {"pkg/push", "pkg/ringmember"},
	"pkg/frontend":                {"pkg/pb/frontendpb"},
	"pkg/querier/worker":          {"pkg/pb/frontendpb"},
	"pkg/querier":                 {"pkg/ingester/client", "pkg/storegateway/client", "pkg/storage/", "pkg/limits", "pkg/pb/"},
	"pkg/storegateway":            {"pkg/storage/", "pkg/limits", "pkg/pb/", "pkg/ringmember", "pkg/storegateway/client"},
	"pkg/storegateway/client":     {"pkg/pb/", "pkg/ringmember"},
	"pkg/ringmember":              nil,
	"pkg/ringmember/ringtest":     nil,
	"pkg/storage/bucket":          nil,
	"pkg/storage/tsdb":            {"pkg/storage/bucket"},
	"pkg/pb/":                     nil,
	"pkg/pb/ingesterpb":           {"pkg/pb/seriespb"},
	"pkg/pb/storegatewaypb":       {"pkg/pb/seriespb"},
	"integration":                 {"*"},
	"tools/loadgen":               {"internal/bench"},
	"tools/writebench":            {"internal/bench"},
	"tools/querybench":            {"internal/bench"},
	"tools/mkbucket":              nil,
	"tools/importcheck":           nil,
	"internal/bench":              nil,
}

func rule(pkg string) ([]string, bool) {
	if r, ok := allowed[pkg]; ok {
		return r, true
	}
	for prefix, r := range allowed {
		if strings.HasSuffix(prefix, "/") && strings.HasPrefix(pkg, prefix) {
			return r, true
		}
	}
	return nil, false
}

func permits(rules []string, imp string) bool {
	for _, l := range leaves {
		if imp == l {
			return true
		}
	}
	for _, r := range rules {
		if r == "*" || r == imp || (strings.HasSuffix(r, "/") && strings.HasPrefix(imp, r)) {
			return true
		}
	}
	return false
}

func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "e2e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		rules, ok := rule(pkg)
		if !ok {
			t.Errorf("package %s has no row in the import table: add it to ARCHITECTURE.md and this test", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			if !permits(rules, imp) {
				t.Errorf("%s imports %s, which ARCHITECTURE.md does not allow", pkg, imp)
			}
		}
	}
}
