// Package importcheck holds the test that enforces the package dependency
// table of ARCHITECTURE.md: components never import each other, and each
// package imports only the Vigil packages its row allows.
package importcheck
