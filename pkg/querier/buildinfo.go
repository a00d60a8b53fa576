package querier

import (
	"net/http"
	"runtime"
	"runtime/debug"

	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// prometheusVersion is the Prometheus release whose query engine and HTTP
// API Vigil runs (module github.com/prometheus/prometheus v0.316.0).
const prometheusVersion = "3.16.0"

// buildInfo is the data of /api/v1/status/buildinfo: Prometheus's fields,
// plus the application's name, as Mimir adds it.
//
// Grafana reads it to tell what it talks to (its alerting's feature
// discovery): with a "features" member it takes the server for Mimir (when
// "application" is "Grafana Mimir") or an unknown flavour, and may use
// Mimir's ruler API, which Vigil does not serve; without one, for
// Prometheus of "version", whose API it then expects. Vigil answers what
// that Prometheus version answers, so version is the Prometheus release
// whose engine and API Vigil embeds, not Vigil's own; revision and
// buildDate are Vigil's build, and there is no features member.
type buildInfo struct {
	Application string `json:"application"`
	v1.PrometheusVersion
}

func newBuildInfo() buildInfo {
	b := buildInfo{Application: "Vigil", PrometheusVersion: v1.PrometheusVersion{Version: prometheusVersion, GoVersion: runtime.Version()}}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.BuildDate = s.Value
			}
		}
	}
	return b
}

// buildInfoHandler serves /api/v1/status/buildinfo.
func buildInfoHandler() http.HandlerFunc {
	info := newBuildInfo()
	return func(w http.ResponseWriter, _ *http.Request) { writeSuccess(w, info) }
}
