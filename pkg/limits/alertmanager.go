package limits

import (
	"flag"
	"net/netip"
	"time"

	"github.com/grafana/dskit/flagext"
)

// AlertmanagerLimits bound a workspace's alert manager: its definition,
// checked when it is stored, and its alerts, checked by the alertmanager.
// The defaults are AMP's quotas (guide L7235-L7335).
type AlertmanagerLimits struct {
	// AMP quota: alert manager definition file size, 1 MB.
	MaxDefinitionSizeBytes int `yaml:"alertmanager_max_definition_size_bytes"`
	// AMP quota: templates in the alert manager definition file, 100.
	MaxTemplates int `yaml:"alertmanager_max_templates_count"`
	// AMP quota: inhibit rules in the alert manager definition file, 100.
	MaxInhibitRules int `yaml:"alertmanager_max_inhibit_rules"`
	// AMP quota: nodes in the alert manager routing tree, 100.
	MaxRouteNodes int `yaml:"alertmanager_max_route_nodes"`
	// AMP: repeat_interval is capped at 5 days (guide L3210).
	MaxRepeatInterval time.Duration `yaml:"alertmanager_max_repeat_interval"`
	// AMP quota: alerts in the alert manager, 1,000.
	MaxAlerts int `yaml:"alertmanager_max_alerts_count"`
	// AMP quota: alert payload size, 20 MB (every alert held together).
	MaxAlertsSizeBytes int `yaml:"alertmanager_max_alerts_size_bytes"`
	// AMP quota: alert aggregation group size, 1,000: the aggregation
	// groups (one per combination of group_by values) a workspace's alert
	// manager holds (guide L7256).
	MaxAggregationGroups int `yaml:"alertmanager_max_dispatcher_aggregation_groups"`
	// Silences per workspace, and bytes per silence (Vigil's bounds: AMP
	// states none).
	MaxSilences         int `yaml:"alertmanager_max_silences_count"`
	MaxSilenceSizeBytes int `yaml:"alertmanager_max_silence_size_bytes"`

	// Notifications per second a workspace sends, all receivers together,
	// and their burst (Vigil's bound: AMP counts throttled notifications,
	// AlertManagerNotificationsThrottled, without stating the rate).
	NotificationRateLimit float64 `yaml:"alertmanager_notification_rate_limit"`
	NotificationBurstSize int     `yaml:"alertmanager_notification_burst_size"`

	// The receivers firewall (Mimir's names): what a workspace's receivers
	// may not reach.
	ReceiversBlockPrivateAddresses bool                 `yaml:"alertmanager_receivers_firewall_block_private_addresses"`
	ReceiversBlockCIDRNetworks     flagext.CIDRSliceCSV `yaml:"alertmanager_receivers_firewall_block_cidr_networks"`
	// SNSAllowAPIURL lets sns_configs name api_url (AMP refuses it): for
	// an SNS-compatible endpoint of the operator's.
	SNSAllowAPIURL bool `yaml:"alertmanager_sns_allow_api_url"`
	// SNSAllowProcessCredentials lets sns_configs without keys of their own
	// sign with the process's AWS credentials: every such workspace then
	// publishes as the operator.
	SNSAllowProcessCredentials bool `yaml:"alertmanager_sns_allow_process_credentials"`
}

// BlockedCIDRs are ReceiversBlockCIDRNetworks as prefixes.
func (l *AlertmanagerLimits) BlockedCIDRs() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(l.ReceiversBlockCIDRNetworks))
	for _, c := range l.ReceiversBlockCIDRNetworks {
		if c.Value == nil {
			continue
		}
		if p, err := netip.ParsePrefix(c.Value.String()); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func (l *AlertmanagerLimits) registerFlags(f *flag.FlagSet) {
	f.IntVar(&l.MaxDefinitionSizeBytes, "alertmanager.max-definition-size-bytes", 1<<20, "Largest alert manager definition a workspace may store, in bytes. AMP quota: 1 MB alert manager definition file size.")
	f.IntVar(&l.MaxTemplates, "alertmanager.max-templates-count", 100, "Most template files an alert manager definition may hold. AMP quota: 100 templates in the alert manager definition file. 0: no limit.")
	f.IntVar(&l.MaxInhibitRules, "alertmanager.max-inhibit-rules", 100, "Most inhibit rules an alert manager definition may hold. AMP quota: 100 inhibition rules. 0: no limit.")
	f.IntVar(&l.MaxRouteNodes, "alertmanager.max-route-nodes", 100, "Most nodes, the root included, an alert manager definition's routing tree may hold. AMP quota: 100 nodes in the alert manager routing tree. 0: no limit.")
	f.DurationVar(&l.MaxRepeatInterval, "alertmanager.max-repeat-interval", 5*24*time.Hour, "Longest repeat_interval in force: a longer one is accepted and treated as this. AMP: repeat_interval is capped at 5 days.")
	f.IntVar(&l.MaxAlerts, "alertmanager.max-alerts-count", 1000, "Most alerts a workspace's alert manager holds; more are refused. AMP quota: 1,000 alerts in the alert manager. 0: no limit.")
	f.IntVar(&l.MaxAlertsSizeBytes, "alertmanager.max-alerts-size-bytes", 20<<20, "Largest size of the alerts a workspace's alert manager holds, together, in bytes. AMP quota: 20 MB alert payload size. 0: no limit.")
	f.IntVar(&l.MaxSilences, "alertmanager.max-silences-count", 10000, "Most silences (active, pending, and expired within -alertmanager.retention) a workspace's alert manager holds (Vigil's bound; AMP states none). 0: no limit.")
	f.IntVar(&l.MaxSilenceSizeBytes, "alertmanager.max-silence-size-bytes", 64<<10, "Largest silence, in bytes, a workspace may create (Vigil's bound; AMP states none). 0: no limit.")
	f.Float64Var(&l.NotificationRateLimit, "alertmanager.notification-rate-limit", 0, "Most notifications per second a workspace's alert manager sends, all receivers together; more are not sent and are counted as throttled (AMP's AlertManagerNotificationsThrottled). 0: no limit.")
	f.IntVar(&l.NotificationBurstSize, "alertmanager.notification-burst-size", 100, "Notifications a workspace's alert manager may send at once above -alertmanager.notification-rate-limit.")
	f.BoolVar(&l.ReceiversBlockPrivateAddresses, "alertmanager.receivers-firewall-block-private-addresses", true, "Refuse receivers (in a definition, and on every connection) private, loopback, link-local and other non-public addresses.")
	f.Var(&l.ReceiversBlockCIDRNetworks, "alertmanager.receivers-firewall-block-cidr-networks", "Comma-separated CIDR networks receivers may never reach (in a definition, and on every connection), whatever -alertmanager.receivers-firewall-block-private-addresses says.")
	f.BoolVar(&l.SNSAllowAPIURL, "alertmanager.sns-allow-api-url", false, "Let sns_configs name api_url (AMP refuses it), for an SNS-compatible endpoint of the operator's. The receivers firewall still applies to it.")
	f.BoolVar(&l.SNSAllowProcessCredentials, "alertmanager.sns-allow-process-credentials", false, "Let sns_configs without sigv4.access_key sign with this process's AWS credentials (environment, shared files, instance role): such receivers publish as the operator, to any topic those credentials may publish to. Off: every SNS receiver names keys of its own.")
	f.IntVar(&l.MaxAggregationGroups, "alertmanager.max-dispatcher-aggregation-groups", 1000, "Most aggregation groups (one per combination of group_by values) a workspace's alert manager holds; alerts that would open more are not dispatched. AMP quota: 1,000 alert aggregation group size. 0: no limit.")
}

// AlertmanagerLimits are the workspace's alert manager limits.
func (o *Overrides) AlertmanagerLimits(workspace string) AlertmanagerLimits {
	return o.get(workspace).Alertmanager
}
