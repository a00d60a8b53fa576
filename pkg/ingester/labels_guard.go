//go:build slicelabels || dedupelabels

package ingester

// Vigil's distributor decodes label strings that alias the request buffer
// and relies on labels.ScratchBuilder copying them, as Prometheus's default
// stringlabels implementation does. The slicelabels and dedupelabels builds
// would keep (or intern) the aliased strings, so they are refused here.
var _ int = "Vigil must be built with Prometheus's default stringlabels implementation"
