package alertmanager

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/notify/email"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/types"
	commoncfg "github.com/prometheus/common/config"

	"github.com/vigil-metrics/vigil/pkg/alertmanager/definition"
)

// pinnedEmail sends through Alertmanager's email notifier, which dials its
// smarthost itself: each notification resolves the smarthost, refuses it
// when the receivers firewall refuses any of its addresses, and dials the
// address it checked (the TLS server name stays the host's).
type pinnedEmail struct {
	conf   *config.EmailConfig
	tmpl   *template.Template
	logger *slog.Logger
	egress func() *definition.Egress
}

func (p *pinnedEmail) Notify(ctx context.Context, alerts ...*types.Alert) (bool, error) {
	host := p.conf.Smarthost.Host
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return true, fmt.Errorf("resolve smarthost %s: %w", host, err)
	}
	eg := p.egress()
	for _, a := range addrs {
		if eg.Blocked(a) {
			return false, fmt.Errorf("receivers firewall: smarthost %s resolves to %s, a blocked address", host, a)
		}
	}
	if len(addrs) == 0 {
		return true, fmt.Errorf("smarthost %s resolves to no address", host)
	}
	// Each address checked, in turn, until one takes the message.
	var retry bool
	for _, a := range addrs {
		if retry, err = p.notifyAt(ctx, a, host, alerts); err == nil {
			return false, nil
		}
	}
	return retry, err
}

// notifyAt sends through the smarthost's address addr, the TLS server name
// staying the host's.
func (p *pinnedEmail) notifyAt(ctx context.Context, addr netip.Addr, host string, alerts []*types.Alert) (bool, error) {
	conf := *p.conf
	conf.Smarthost.Host = addr.Unmap().String()
	tls := &commoncfg.TLSConfig{}
	if conf.TLSConfig != nil {
		copied := *conf.TLSConfig
		tls = &copied
	}
	if tls.ServerName == "" {
		tls.ServerName = host
	}
	conf.TLSConfig = tls
	return email.New(&conf, p.tmpl, p.logger).Notify(ctx, alerts...)
}

// emailIntegrations are a receiver's email integrations, pinned.
func emailIntegrations(rcv config.Receiver, tmpl *template.Template, logger *slog.Logger, egress func() *definition.Egress) []notify.Integration {
	out := make([]notify.Integration, 0, len(rcv.EmailConfigs))
	for i, c := range rcv.EmailConfigs {
		out = append(out, notify.NewIntegration(&pinnedEmail{conf: c, tmpl: tmpl, logger: logger.With("integration", "email"), egress: egress}, c, "email", i, rcv.Name))
	}
	return out
}
