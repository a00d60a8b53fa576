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
)

// Egress is what the operator lets a workspace's receivers reach (Mimir's
// receivers firewall): addresses in BlockCIDRs never, private, loopback,
// link-local and other non-public addresses only when BlockPrivate is
// false; SNS's api_url only when AllowSNSAPIURL is set (an SNS-compatible
// endpoint of the operator's).
type Egress struct {
	BlockPrivate   bool
	BlockCIDRs     []netip.Prefix
	AllowSNSAPIURL bool
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
	return addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() || !addr.IsValid() ||
		sharedAddressSpace.Contains(addr)
}

// sharedAddressSpace is RFC 6598's carrier-grade NAT range, private in
// all but name.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

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
	urlType      = reflect.TypeOf(url.URL{})
	hostPortType = reflect.TypeOf(config.HostPort{})
)

// walkURLs calls f with every URL a configuration value holds: url.URL
// values (Alertmanager's and Prometheus's URL types wrap them), string
// fields whose YAML key ends in url, and host:port values (SMTP's
// smarthost) as http://host.
func walkURLs(v reflect.Value, path string, f func(field, u string)) {
	walkValue(v, path, f, 0)
}

func walkValue(v reflect.Value, path string, f func(field, u string), depth int) {
	if depth > 32 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkValue(v.Elem(), path, f, depth+1)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkValue(v.Index(i), fmt.Sprintf("%s[%d]", path, i), f, depth+1)
		}
	case reflect.Struct:
		switch v.Type() {
		case urlType:
			u := v.Addr().Interface().(*url.URL)
			f(path, u.String())
			return
		case hostPortType:
			hp := v.Interface().(config.HostPort)
			if hp.Host != "" {
				f(path, "http://"+net.JoinHostPort(hp.Host, "1"))
			}
			return
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name := strings.Split(sf.Tag.Get("yaml"), ",")[0]
			if name == "" {
				name = sf.Name
			}
			fv := v.Field(i)
			if fv.Kind() == reflect.String && strings.HasSuffix(strings.ToLower(name), "url") {
				if s := fv.String(); s != "" {
					f(path+"."+name, s)
				}
				continue
			}
			walkValue(fv, path+"."+name, f, depth+1)
		}
	}
}
