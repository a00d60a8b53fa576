package limits

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOverrides(t *testing.T) {
	var def Limits
	def.RegisterFlags(flag.NewFlagSet("t", flag.PanicOnError))
	require.Equal(t, 70, def.MaxLabelNamesPerSeries)

	custom := def
	custom.MaxLabelNamesPerSeries = 5
	o, err := NewOverrides(def, map[string]*Limits{"ws-a": &custom})
	require.NoError(t, err)
	require.Equal(t, 5, o.MaxLabelNamesPerSeries("ws-a"))
	require.Equal(t, 70, o.MaxLabelNamesPerSeries("ws-b"))

	bad := def
	bad.MaxLabelNamesPerSeries = 0
	_, err = NewOverrides(def, map[string]*Limits{"ws-c": &bad})
	require.ErrorContains(t, err, "ws-c")
}
