package compactor

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/tsdb"

	vtsdb "github.com/vigil-metrics/vigil/pkg/storage/tsdb"
)

func writeMeta(dir string, meta *tsdb.BlockMeta) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, vtsdb.MetaFilename), b, 0o644)
}
