package definition

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/alertmanager/config"
	amcommoncfg "github.com/prometheus/alertmanager/config/common"
)

// Egress is what the operator lets a workspace's receivers reach (Mimir's
// receivers firewall): addresses in BlockCIDRs never, private, loopback,
// link-local and other non-public addresses only when BlockPrivate is
// false; SNS's api_url only when AllowSNSAPIURL is set (an SNS-compatible
// endpoint of the operator's); SNS receivers without keys of their own
// (signing with the process's AWS identity) only when
// AllowSNSProcessCredentials is set.
type Egress struct {
	BlockPrivate               bool
	BlockCIDRs                 []netip.Prefix
	AllowSNSAPIURL             bool
	AllowSNSProcessCredentials bool
}

// Blocked reports whether the firewall refuses addr.
func (e *Egress) Blocked(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range e.BlockCIDRs {
		if p.Contains(addr) {
			return true
		}
	}
	if !e.BlockPrivate {
		return false
	}
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() || !addr.IsValid() {
		return true
	}
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// nonPublic are the ranges, beyond those net/netip names, that are not the
// public Internet or embed an address that may not be: "this network",
// carrier-grade NAT, IETF protocol assignments, benchmarking, NAT64 and
// 6to4.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
}

// CheckURL refuses a URL a receiver may not use: another scheme than http
// or https (file:// above all), or a host the firewall refuses, named by
// its address or as localhost. A host name is checked again on each
// connection by Dialer, once it resolves.
func (e *Egress) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%s:// URLs are not allowed (only http and https)", u.Scheme)
	}
	return e.CheckHost(u.Hostname())
}

// CheckHost refuses a host the firewall refuses: an address, or localhost.
func (e *Egress) CheckHost(host string) error {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return fmt.Errorf("no host")
	}
	if e.BlockPrivate && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
		return fmt.Errorf("%s is a loopback host, refused by the receivers firewall", host)
	}
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && e.Blocked(addr) {
		return fmt.Errorf("%s is a private, loopback or link-local address, refused by the receivers firewall", host)
	}
	return nil
}

// Dialer is a dialer that refuses, once a host name has resolved, every
// address the firewall refuses: what a receiver's HTTP client connects
// with.
func (e *Egress) Dialer() *net.Dialer {
	return &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("receivers firewall: cannot read address %q: %w", address, err)
			}
			if e.Blocked(ap.Addr()) {
				return fmt.Errorf("receivers firewall: %s is a blocked address", ap.Addr())
			}
			return nil
		},
	}
}

// DialContext is Dialer's DialContext.
func (e *Egress) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return e.Dialer().DialContext(ctx, network, address)
}

var (
	secretTemplateURLType = reflect.TypeOf(amcommoncfg.SecretTemplateURL(""))
	urlType               = reflect.TypeOf(url.URL{})
	hostPortType          = reflect.TypeOf(config.HostPort{})
)

// walkURLs calls f with every address a configuration value connects to:
// url.URL values (Alertmanager's and Prometheus's URL types wrap them: the
// endpoints), the string fields api_url and token_url (SNS's endpoint,
// OAuth2's), webhook URLs, and host:port values (SMTP's smarthost) as
// http://host. Links only shown in a notification (icon_url, image_url,
// ...) are not connected to and not checked.
func walkURLs(v reflect.Value, path string, f func(field, u string)) {
	walkConfig(v, path, "", 0, func(path, name string, v reflect.Value) bool {
		switch {
		case v.Kind() == reflect.Struct && v.Type() == urlType:
			f(path, v.Addr().Interface().(*url.URL).String())
			return false
		case v.Kind() == reflect.Struct && v.Type() == hostPortType:
			if hp := v.Interface().(config.HostPort); hp.Host != "" {
				f(path, "http://"+net.JoinHostPort(hp.Host, "1"))
			}
			return false
		case v.Kind() == reflect.String && (name == "api_url" || name == "token_url" || v.Type() == secretTemplateURLType):
			// A templated URL is known only when a notification is sent:
			// the dialer checks where it connects then.
			if s := v.String(); s != "" && !strings.Contains(s, "{{") {
				f(path, s)
			}
			return false
		}
		return true
	})
}

// walkConfig calls visit with every value a loaded configuration holds,
// with its path and its YAML key (name; "" for an element of a list or
// map), and goes into it unless visit says not to.
func walkConfig(v reflect.Value, path, name string, depth int, visit func(path, name string, v reflect.Value) bool) {
	if depth > 48 || !visit(path, name, v) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkConfig(v.Elem(), path, name, depth+1, visit)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkConfig(v.Index(i), fmt.Sprintf("%s[%d]", path, i), "", depth+1, visit)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walkConfig(iter.Value(), fmt.Sprintf("%s[%v]", path, iter.Key()), "", depth+1, visit)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			key := strings.Split(sf.Tag.Get("yaml"), ",")[0]
			if key == "" {
				key = sf.Name
			}
			walkConfig(v.Field(i), path+"."+key, key, depth+1, visit)
		}
	}
}
