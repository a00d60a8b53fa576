package alertmanager

import (
	"context"
	"net"
	"testing"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/stretchr/testify/require"

	"github.com/vigil-metrics/vigil/pkg/alertmanager/definition"
)

// An email receiver whose smarthost is a name resolving to loopback is
// refused when it sends, before it dials: Alertmanager's email notifier
// dials by itself, past the firewall's dialer.
func TestEmailSmarthostBehindTheFirewall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dialled := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialled <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	tmpl, err := definition.Templates(nil)
	require.NoError(t, err)
	requireTLS := false
	conf := &config.EmailConfig{To: "a@example.com", From: "b@example.com", Smarthost: config.HostPort{Host: "localhost", Port: port},
		RequireTLS: &requireTLS, HTML: "x", Headers: map[string]string{}}
	alert := &types.Alert{Alert: model.Alert{Labels: model.LabelSet{"alertname": "A"}}}

	blocked := &pinnedEmail{conf: conf, tmpl: tmpl, logger: promslog.NewNopLogger(), egress: func() *definition.Egress { return &definition.Egress{BlockPrivate: true} }}
	retry, err := blocked.Notify(context.Background(), alert)
	require.ErrorContains(t, err, "receivers firewall")
	require.False(t, retry)
	require.Empty(t, dialled, "nothing was dialled")

	allowed := *conf
	allowed.Smarthost.Host = "127.0.0.1"
	open := &pinnedEmail{conf: &allowed, tmpl: tmpl, logger: promslog.NewNopLogger(), egress: func() *definition.Egress { return &definition.Egress{} }}
	_, err = open.Notify(context.Background(), alert)
	require.Error(t, err, "the fake server hangs up")
	require.NotContains(t, err.Error(), "receivers firewall")
	require.Len(t, dialled, 1, "the allowed smarthost was dialled")
}
