package distributor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/prometheus/prometheus/prompb"
)

// The decoder below reads a remote-write 1.0 WriteRequest into a reused
// prompb.WriteRequest without allocating per label: label names and values
// are strings that alias the decompressed body, and the label and sample
// slices of every series keep their capacity from one request to the next.
//
// Aliasing is safe because nothing keeps a label string past the request's
// cleanup: ingesters copy labels into their own memory before storing them
// (see the ingester's labels.ScratchBuilder), errors are formatted with
// copies, and the buffers return to the pool only in the cleanup that runs
// after every replica finished with the request.

var errTruncated = errors.New("unexpected end of message")

func yoloString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func uvarint(buf []byte) (uint64, int, error) {
	v, n := binary.Uvarint(buf)
	if n <= 0 {
		return 0, 0, errTruncated
	}
	return v, n, nil
}

// field reads one field header and, for length-delimited fields, the payload.
// It returns the field number, wire type, the payload (wire type 2), the
// varint or fixed value (other types) and the bytes consumed.
func field(buf []byte) (num int, typ int, payload []byte, val uint64, n int, err error) {
	// Fast path: a one-byte key of a length-delimited field shorter than 128
	// bytes, which is what label names and values nearly always are.
	if len(buf) >= 2 && buf[0] < 0x80 && buf[0]&7 == 2 && buf[1] < 0x80 {
		if l := int(buf[1]); 2+l <= len(buf) {
			return int(buf[0] >> 3), 2, buf[2 : 2+l], 0, 2 + l, nil
		}
		return 0, 0, nil, 0, 0, errTruncated
	}
	key, kn, err := uvarint(buf)
	if err != nil {
		return 0, 0, nil, 0, 0, err
	}
	num, typ = int(key>>3), int(key&7)
	rest := buf[kn:]
	switch typ {
	case 0:
		v, vn, err := uvarint(rest)
		return num, typ, nil, v, kn + vn, err
	case 1:
		if len(rest) < 8 {
			return 0, 0, nil, 0, 0, errTruncated
		}
		return num, typ, nil, binary.LittleEndian.Uint64(rest), kn + 8, nil
	case 2:
		l, ln, err := uvarint(rest)
		if err != nil {
			return 0, 0, nil, 0, 0, err
		}
		if l > uint64(len(rest)-ln) {
			return 0, 0, nil, 0, 0, errTruncated
		}
		return num, typ, rest[ln : ln+int(l)], 0, kn + ln + int(l), nil
	case 5:
		if len(rest) < 4 {
			return 0, 0, nil, 0, 0, errTruncated
		}
		return num, typ, nil, uint64(binary.LittleEndian.Uint32(rest)), kn + 4, nil
	default:
		return 0, 0, nil, 0, 0, fmt.Errorf("unsupported wire type %d", typ)
	}
}

// decodeWriteRequest decodes buf into req, reusing req's slices.
func decodeWriteRequest(buf []byte, req *prompb.WriteRequest) error {
	n := 0
	for len(buf) > 0 {
		num, typ, payload, _, used, err := field(buf)
		if err != nil {
			return err
		}
		buf = buf[used:]
		switch {
		case num == 1 && typ == 2:
			if n < cap(req.Timeseries) {
				req.Timeseries = req.Timeseries[:n+1]
			} else {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{})
			}
			if err := decodeTimeSeries(payload, &req.Timeseries[n]); err != nil {
				return fmt.Errorf("timeseries %d: %w", n, err)
			}
			n++
		case num == 3 && typ == 2:
			var md prompb.MetricMetadata
			if err := md.Unmarshal(payload); err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			req.Metadata = append(req.Metadata, md)
		}
	}
	req.Timeseries = req.Timeseries[:n]
	return nil
}

func decodeTimeSeries(buf []byte, ts *prompb.TimeSeries) error {
	ts.Labels, ts.Samples = ts.Labels[:0], ts.Samples[:0]
	ts.Exemplars, ts.Histograms = ts.Exemplars[:0], ts.Histograms[:0]
	for len(buf) > 0 {
		num, typ, payload, _, used, err := field(buf)
		if err != nil {
			return err
		}
		buf = buf[used:]
		if typ != 2 {
			continue
		}
		switch num {
		case 1:
			l, err := decodeLabel(payload)
			if err != nil {
				return err
			}
			ts.Labels = append(ts.Labels, l)
		case 2:
			s, err := decodeSample(payload)
			if err != nil {
				return err
			}
			ts.Samples = append(ts.Samples, s)
		case 3:
			var e prompb.Exemplar
			if err := e.Unmarshal(payload); err != nil {
				return fmt.Errorf("exemplar: %w", err)
			}
			ts.Exemplars = append(ts.Exemplars, e)
		case 4:
			var h prompb.Histogram
			if err := h.Unmarshal(payload); err != nil {
				return fmt.Errorf("histogram: %w", err)
			}
			ts.Histograms = append(ts.Histograms, h)
		}
	}
	return nil
}

func decodeLabel(buf []byte) (prompb.Label, error) {
	var l prompb.Label
	for len(buf) > 0 {
		num, typ, payload, _, used, err := field(buf)
		if err != nil {
			return l, err
		}
		buf = buf[used:]
		if typ != 2 {
			continue
		}
		switch num {
		case 1:
			l.Name = yoloString(payload)
		case 2:
			l.Value = yoloString(payload)
		}
	}
	return l, nil
}

func decodeSample(buf []byte) (prompb.Sample, error) {
	var s prompb.Sample
	// Fast path: value (fixed64, field 1) then timestamp (varint, field 2).
	if len(buf) >= 10 && buf[0] == 0x09 && buf[9] == 0x10 {
		if ts, n := binary.Uvarint(buf[10:]); n > 0 && 10+n == len(buf) {
			s.Value = math.Float64frombits(binary.LittleEndian.Uint64(buf[1:9]))
			s.Timestamp = int64(ts)
			return s, nil
		}
	}
	for len(buf) > 0 {
		num, typ, _, val, used, err := field(buf)
		if err != nil {
			return s, err
		}
		buf = buf[used:]
		switch {
		case num == 1 && typ == 1:
			s.Value = math.Float64frombits(val)
		case num == 2 && typ == 0:
			s.Timestamp = int64(val)
		}
	}
	return s, nil
}
