// Package definition reads AMP's alert manager definition: one YAML
// document holding template_files (template name -> text) and
// alertmanager_config (an Alertmanager configuration, as a string). The
// control plane checks a definition with it before storing it, and the
// alertmanager loads it with it, so that what is stored always loads.
package definition

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"gopkg.in/yaml.v3"
)

// Definition is the document, as AMP defines it.
type Definition struct {
	TemplateFiles      map[string]string `yaml:"template_files"`
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
}

// Limits are a workspace's bounds on its definition.
type Limits struct {
	// MaxSizeBytes bounds the document (AMP: 1 MB).
	MaxSizeBytes int
	// MaxTemplates bounds template_files (AMP: 100).
	MaxTemplates int
	// MaxInhibitRules bounds inhibit_rules (AMP: 100).
	MaxInhibitRules int
	// MaxRouteNodes bounds the routing tree's nodes, the root included
	// (AMP: 100).
	MaxRouteNodes int
	// MaxRepeatInterval caps every route's repeat_interval: a longer one
	// is accepted and treated as this (AMP: 5 days).
	MaxRepeatInterval time.Duration
}

// AMPLimits are AMP's quotas (guide L7235-L7335: "Alert manager definition
// file size 1 MB, templates 100, inhibit rules 100, routing tree nodes
// 100"; L3210: repeat_interval at most 5 days).
var AMPLimits = Limits{MaxSizeBytes: 1 << 20, MaxTemplates: 100, MaxInhibitRules: 100, MaxRouteNodes: 100, MaxRepeatInterval: 5 * 24 * time.Hour}

// Loaded is a checked definition: its Alertmanager configuration (every
// repeat_interval capped) and its templates (Alertmanager's defaults and
// the definition's template_files).
type Loaded struct {
	Config    *config.Config
	Templates *template.Template
}

// Error is a definition refused, with the reason a user reads.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// Parse checks and loads a definition: the document's shape and size,
// Alertmanager's own configuration loader, AMP's limits, and the egress
// rules (no local file named, no URL the firewall refuses). A refused
// definition is an *Error.
func Parse(data []byte, lim Limits, eg *Egress) (*Loaded, error) {
	if lim.MaxSizeBytes > 0 && len(data) > lim.MaxSizeBytes {
		return nil, refuse("The alert manager definition is %d bytes, more than the %d allowed.", len(data), lim.MaxSizeBytes)
	}
	var def Definition
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&def); err != nil {
		return nil, refuse("The alert manager definition is not a YAML document with template_files and alertmanager_config: %v", err)
	}
	if strings.TrimSpace(def.AlertmanagerConfig) == "" {
		return nil, refuse("The alert manager definition has no alertmanager_config.")
	}
	if lim.MaxTemplates > 0 && len(def.TemplateFiles) > lim.MaxTemplates {
		return nil, refuse("The alert manager definition holds %d template files, more than the %d allowed.", len(def.TemplateFiles), lim.MaxTemplates)
	}
	if err := checkKeys(def.AlertmanagerConfig); err != nil {
		return nil, err
	}
	cfg, err := config.Load(def.AlertmanagerConfig)
	if err != nil {
		return nil, refuse("The alertmanager_config is not valid: %v", err)
	}
	if lim.MaxInhibitRules > 0 && len(cfg.InhibitRules) > lim.MaxInhibitRules {
		return nil, refuse("The alertmanager_config holds %d inhibit rules, more than the %d allowed.", len(cfg.InhibitRules), lim.MaxInhibitRules)
	}
	if n := countRoutes(cfg.Route); lim.MaxRouteNodes > 0 && n > lim.MaxRouteNodes {
		return nil, refuse("The alertmanager_config's routing tree has %d nodes, more than the %d allowed.", n, lim.MaxRouteNodes)
	}
	// AMP's definitions name their template files by their keys in
	// template_files (guide L3436): those are parsed below, nothing else.
	for _, name := range cfg.Templates {
		if _, ok := def.TemplateFiles[name]; !ok {
			return nil, refuse("The alertmanager_config's templates name %q, which is not a key of template_files: templates are read from template_files only.", name)
		}
	}
	cfg.Templates = nil
	if err := checkFiles(reflect.ValueOf(cfg), "alertmanager_config"); err != nil {
		return nil, err
	}
	if err := checkReceivers(cfg, eg); err != nil {
		return nil, err
	}
	capRepeat(cfg.Route, lim.MaxRepeatInterval)
	if err := checkTemplateCost(def.TemplateFiles); err != nil {
		return nil, err
	}
	tmpl, err := Templates(def.TemplateFiles)
	if err != nil {
		return nil, err
	}
	// Every receiver is built as the alertmanager will build it (nothing
	// is dialled): a definition that is stored always loads.
	for _, rcv := range cfg.Receivers {
		if _, err := receiver.BuildReceiverIntegrations(rcv, tmpl, promslog.NewNopLogger()); err != nil {
			return nil, refuse("Receiver %q cannot be built: %v", rcv.Name, err)
		}
	}
	return &Loaded{Config: cfg, Templates: tmpl}, nil
}

// Templates parses Alertmanager's default templates and then the
// definition's, by name, into one set.
func Templates(files map[string]string) (*template.Template, error) {
	tmpl, err := template.FromGlobs(nil)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := tmpl.Parse(strings.NewReader(files[name])); err != nil {
			return nil, refuse("The template file %q is not valid: %v", name, err)
		}
	}
	return tmpl, nil
}

// forbiddenKeys are the configuration's keys that read local files or
// reach outside the workspace's receivers: templates (AMP's come from
// template_files), tracing and event_recorder (the process's own
// outputs). Any key ending in _file or _files (credentials, CA, key and
// URL files) is forbidden too.
var forbiddenKeys = map[string]string{
	"tracing":        "tracing is the operator's",
	"event_recorder": "the event recorder is the operator's",
}

// maxYAMLDepth bounds the nesting of the configuration's YAML.
const maxYAMLDepth = 64

// checkKeys refuses a configuration naming a local file: any key ending in
// _file or _files, at any depth (anchors and flow mappings included), and
// the top-level keys of forbiddenKeys. It reads the YAML before
// Alertmanager does, so that a field added to Alertmanager later is
// refused too.
func checkKeys(text string) error {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		return refuse("The alertmanager_config is not valid YAML: %v", err)
	}
	var walk func(n *yaml.Node, depth int) error
	walk = func(n *yaml.Node, depth int) error {
		if n == nil {
			return nil
		}
		if depth > maxYAMLDepth {
			return refuse("The alertmanager_config nests deeper than %d levels.", maxYAMLDepth)
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i]
				if key.Kind != yaml.ScalarNode {
					// An alias as a key names a key this check would not
					// read (the anchor's name, not its value).
					return refuse("The alertmanager_config uses an alias or a collection as a key (line %d).", key.Line)
				}
				k := key.Value
				if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_files") {
					return refuse("The alertmanager_config names a local file (%s at line %d): no field reading a file is allowed.", k, key.Line)
				}
				if k == "proxy_from_environment" {
					return refuse("The alertmanager_config may not use the process's proxy (proxy_from_environment at line %d).", key.Line)
				}
				if why, ok := forbiddenKeys[k]; ok && depth == 1 {
					return refuse("The alertmanager_config may not hold %s (line %d): %s.", k, key.Line, why)
				}
			}
		}
		for _, c := range n.Content {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(&root, 0)
}

func countRoutes(r *config.Route) int {
	if r == nil {
		return 0
	}
	n := 1
	for _, c := range r.Routes {
		n += countRoutes(c)
	}
	return n
}

// capRepeat caps every route's repeat_interval at max, the children's as
// given or inherited.
func capRepeat(r *config.Route, max time.Duration) {
	if r == nil || max <= 0 {
		return
	}
	if r.RepeatInterval != nil && time.Duration(*r.RepeatInterval) > max {
		d := model.Duration(max)
		r.RepeatInterval = &d
	}
	for _, c := range r.Routes {
		capRepeat(c, max)
	}
}

// RepeatIntervalOK reports whether the root route, as Alertmanager
// resolves it, repeats no less often than max: what the dispatcher will
// use, defaults included.
func RepeatIntervalOK(cfg *config.Config, max time.Duration) bool {
	ok := true
	dispatch.NewRoute(cfg.Route, nil).Walk(func(r *dispatch.Route) {
		if r.RouteOpts.RepeatInterval > max {
			ok = false
		}
	})
	return ok
}

// checkReceivers applies the egress rules to every receiver: each URL
// must be http or https and not name a host the firewall refuses; SNS
// needs sigv4.region, names no profile, and names api_url only where the
// operator allows it.
func checkReceivers(cfg *config.Config, eg *Egress) error {
	for _, r := range cfg.Receivers {
		for _, sns := range r.SNSConfigs {
			if sns.Sigv4.Region == "" {
				return refuse("Receiver %q: sns_configs need sigv4.region.", r.Name)
			}
			if sns.Sigv4.Profile != "" {
				return refuse("Receiver %q: sns_configs may not name sigv4.profile (a local credentials file).", r.Name)
			}
			if sns.APIUrl != "" && !eg.AllowSNSAPIURL {
				return refuse("Receiver %q: sns_configs may not name api_url (the operator allows it with -alertmanager.sns-allow-api-url).", r.Name)
			}
			if sns.Sigv4.AccessKey == "" && !eg.AllowSNSProcessCredentials {
				return refuse("Receiver %q: sns_configs need sigv4.access_key and sigv4.secret_key (the operator lets receivers use the process's own AWS credentials with -alertmanager.sns-allow-process-credentials).", r.Name)
			}
			if (sns.Sigv4.RoleARN != "" || sns.Sigv4.ExternalID != "") && sns.Sigv4.AccessKey == "" {
				return refuse("Receiver %q: sns_configs may name sigv4.role_arn or external_id only with the receiver's own sigv4.access_key (never to assume a role as the process).", r.Name)
			}
			if sns.UseAWSHTTPClient {
				return refuse("Receiver %q: sns_configs may not set use_aws_http_client (it would bypass the egress firewall).", r.Name)
			}
		}
		var errs []error
		walkURLs(reflect.ValueOf(r), "", func(field, u string) {
			if err := eg.CheckURL(u); err != nil {
				errs = append(errs, fmt.Errorf("receiver %q, %s: %w", r.Name, field, err))
			}
		})
		if len(errs) > 0 {
			return refuse("The alertmanager_config's receivers reach what they may not: %v", errors.Join(errs...))
		}
	}
	if cfg.Global != nil {
		var errs []error
		walkURLs(reflect.ValueOf(*cfg.Global), "global", func(field, u string) {
			if err := eg.CheckURL(u); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, err))
			}
		})
		if len(errs) > 0 {
			return refuse("The alertmanager_config's global section reaches what it may not: %v", errors.Join(errs...))
		}
	}
	return nil
}
