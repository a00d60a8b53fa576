//go:build e2e

package integration

import "testing"

// TestRulerAlertsResolvedFor15Minutes runs the alert generator
// specification to its end: a resolved alert is re-sent for 15 minutes
// after it resolved, and then no more. It takes 16 minutes.
func TestRulerAlertsResolvedFor15Minutes(t *testing.T) { runAlertGeneratorSpec(t, specResend, true) }
