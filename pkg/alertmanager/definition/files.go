package definition

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	tmpltext "text/template"
	"text/template/parse"

	"github.com/prometheus/alertmanager/template"
)

// checkFiles refuses a loaded configuration that names a local file in
// any field Alertmanager or Prometheus's HTTP client reads one from: every
// field whose YAML key ends in _file or _files, and the files of
// http_headers. It reads what Alertmanager loaded, whatever the YAML's
// spelling (aliases, merges) was.
func checkFiles(v reflect.Value, path string) error {
	var err error
	walkConfig(v, path, "", 0, func(path, name string, v reflect.Value) bool {
		if (strings.HasSuffix(name, "_file") || strings.HasSuffix(name, "_files") || name == "files") && !v.IsZero() {
			err = refuse("The alertmanager_config names a local file (%s): no field reading a file is allowed.", path)
		}
		return err == nil
	})
	return err
}

// Bounds on what rendering a definition's templates may cost: the number
// of template invocations one template expands to, all nested calls
// counted.
const maxTemplateExpansion = 10_000

// maxRangeDepth bounds ranges nested in one template: each ranges over
// the notification's data (its alerts, their labels), whose size the
// alerts limit bounds.
const maxRangeDepth = 3

// checkTemplateCost refuses templates whose rendering could take the
// process down: a template that calls itself (directly or not), one whose
// nested calls expand past maxTemplateExpansion invocations, a range over
// anything but the notification's data (a field, or a variable's field:
// Go's range over an integer, or over a variable the template bound, would
// let the tenant choose the count), and ranges nested deeper than
// maxRangeDepth. The files are parsed in the order Templates parses them,
// so that a name defined twice is checked as it will run.
func checkTemplateCost(files map[string]string) error {
	t := tmpltext.New("").Funcs(tmpltext.FuncMap(template.DefaultFuncs))
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, err := t.New(name).Parse(files[name]); err != nil {
			return refuse("The template file %q is not valid: %v", name, err)
		}
	}
	calls := map[string][]string{}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		if err := checkRanges(tt.Name(), tt.Tree.Root, 0); err != nil {
			return err
		}
		walkNodes(tt.Tree.Root, func(n parse.Node) {
			if n, ok := n.(*parse.TemplateNode); ok {
				calls[tt.Name()] = append(calls[tt.Name()], n.Name)
			}
		})
	}
	cost := map[string]int{}
	visiting := map[string]bool{}
	var expand func(name string) (int, error)
	expand = func(name string) (int, error) {
		if c, ok := cost[name]; ok {
			return c, nil
		}
		if visiting[name] {
			return 0, refuse("Template %q calls itself: recursive templates are not allowed.", name)
		}
		visiting[name] = true
		total := 1
		for _, callee := range calls[name] {
			c, err := expand(callee)
			if err != nil {
				return 0, err
			}
			total += c
			if total > maxTemplateExpansion {
				return 0, refuse("Template %q expands to more than %d template invocations.", name, maxTemplateExpansion)
			}
		}
		visiting[name] = false
		cost[name] = total
		return total, nil
	}
	for name := range calls {
		if _, err := expand(name); err != nil {
			return err
		}
	}
	return nil
}

// checkRanges refuses, below n, a range over anything but data, and
// ranges nested deeper than maxRangeDepth.
func checkRanges(name string, n parse.Node, depth int) error {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return nil
	}
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err := checkRanges(name, c, depth); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return errors.Join(checkRanges(name, n.List, depth), checkRanges(name, n.ElseList, depth))
	case *parse.WithNode:
		return errors.Join(checkRanges(name, n.List, depth), checkRanges(name, n.ElseList, depth))
	case *parse.RangeNode:
		if depth+1 > maxRangeDepth {
			return refuse("Template %q nests ranges deeper than %d.", name, maxRangeDepth)
		}
		if !rangesOverData(n.Pipe) {
			return refuse("Template %q ranges over %s: only ranges over the notification's data (a field such as .Alerts, or a variable's field) are allowed.", name, n.Pipe)
		}
		return errors.Join(checkRanges(name, n.List, depth+1), checkRanges(name, n.ElseList, depth))
	}
	return nil
}

// rangesOverData tells whether a range's pipeline is one field of the
// data: .X, .X.Y, $.X, $v.X, (.X).Y.
func rangesOverData(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode, *parse.DotNode:
		return true
	case *parse.VariableNode:
		return len(a.Ident) > 1
	case *parse.ChainNode:
		return len(a.Field) > 0
	}
	return false
}

// walkNodes calls f on every node below n.
func walkNodes(n parse.Node, f func(parse.Node)) {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return
	}
	f(n)
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			walkNodes(c, f)
		}
	case *parse.IfNode:
		walkNodes(n.List, f)
		walkNodes(n.ElseList, f)
	case *parse.RangeNode:
		walkNodes(n.List, f)
		walkNodes(n.ElseList, f)
	case *parse.WithNode:
		walkNodes(n.List, f)
		walkNodes(n.ElseList, f)
	}
}
