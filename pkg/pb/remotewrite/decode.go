// Package remotewrite decodes Prometheus remote-write 1.0 WriteRequests
// without allocating per label: the distributor's HTTP handler and the
// ingester's gRPC Push both read requests with it.
package remotewrite

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
// cleanup: ingesters copy labels into their own memory before storing them,
// errors are formatted with copies, and the buffers return to their pool
// only once every user of the request is done with it.

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

// The in-memory size of the decoded elements. A request is refused once its
// elements would take more than maxDecodeAmplification times its decoded
// size (before the memory of the offending series is allocated, but for a
// small series' few hundred elements): no valid series comes close. The densest valid series, {__name__="a"} with one sample at a real
// timestamp and value 0, is 26 bytes on the wire and 240 in memory (9.2x);
// ordinary series take 2-4x. A hostile request of 8M empty series, 16 MB
// decoded, would take 1 GB.
const (
	seriesMem = int(unsafe.Sizeof(prompb.TimeSeries{}))
	// MetadataMem is the in-memory size of one metadata element.
	MetadataMem  = int(unsafe.Sizeof(prompb.MetricMetadata{}))
	labelMem     = int(unsafe.Sizeof(prompb.Label{}))
	sampleMem    = int(unsafe.Sizeof(prompb.Sample{}))
	exemplarMem  = int(unsafe.Sizeof(prompb.Exemplar{}))
	histogramMem = int(unsafe.Sizeof(prompb.Histogram{}))
	spanMem      = int(unsafe.Sizeof(prompb.BucketSpan{}))

	maxDecodeAmplification = 12
	decodeSlack            = 64 << 10
)

// shape counts the elements of an encoded series. Exemplars, histograms
// and metadata are decoded by the generated code into memory of their own:
// strings is the encoded size of exemplars and metadata (their strings are
// copied), and their repeated parts are counted one by one.
type shape struct {
	labels, samples, exemplars, histograms, strings int
	// nestedLabels are exemplar labels and spans histogram bucket spans,
	// which the generated decoder appends one at a time; packed are the
	// numbers of packed histogram fields, for which it allocates exactly,
	// and unpacked those sent one field each, which it appends.
	nestedLabels, spans, packed, unpacked int
}

// memory is what decoding a series of this shape allocates, at most. What
// is appended one at a time counts twice: the slice may end up with twice
// the room it holds. Unpacked numbers count five times, what appending
// millions of them allocates in all (slices beyond 256 elements grow by a
// quarter); no encoder sends them unpacked, only a hostile request does.
func (s shape) memory() int {
	return s.labels*labelMem + s.samples*sampleMem + s.exemplars*exemplarMem +
		s.histograms*histogramMem + 2*s.strings + 8*s.packed +
		2*(s.nestedLabels*labelMem+s.spans*spanMem) + 5*8*s.unpacked
}

// measureExemplar counts the labels of an encoded exemplar.
func (s *shape) measureExemplar(buf []byte) error {
	for len(buf) > 0 {
		num, typ, _, _, used, err := field(buf)
		if err != nil {
			return err
		}
		buf = buf[used:]
		if num == 1 && typ == 2 {
			s.nestedLabels++
		}
	}
	return nil
}

// measureHistogram counts the spans and bucket numbers of an encoded
// native histogram. Packed numbers take at least a byte each.
func (s *shape) measureHistogram(buf []byte) error {
	for len(buf) > 0 {
		num, typ, payload, _, used, err := field(buf)
		if err != nil {
			return err
		}
		buf = buf[used:]
		switch num {
		case 8, 11: // negative_spans, positive_spans
			if typ == 2 {
				s.spans++
			}
		case 9, 12: // negative_deltas, positive_deltas: varints
			if typ == 2 {
				for _, b := range payload {
					if b < 0x80 {
						s.packed++
					}
				}
			} else {
				s.unpacked++
			}
		case 10, 13, 16: // negative_counts, positive_counts, custom_values: doubles
			if typ == 2 {
				s.packed += len(payload) / 8
			} else {
				s.unpacked++
			}
		}
	}
	return nil
}

// measureSeries counts the elements of an encoded series into sh.
func (sh *shape) measureSeries(series []byte) error {
	for len(series) > 0 {
		// Fast path: a label or sample under 128 bytes, which is nearly
		// every field of a series.
		if len(series) >= 2 && series[1] < 0x80 && (series[0] == 0x0a || series[0] == 0x12) {
			if 2+int(series[1]) > len(series) {
				return errTruncated
			}
			if series[0] == 0x0a {
				sh.labels++
			} else {
				sh.samples++
			}
			series = series[2+int(series[1]):]
			continue
		}
		num, typ, payload, _, used, err := field(series)
		if err != nil {
			return err
		}
		series = series[used:]
		if typ != 2 {
			continue
		}
		switch num {
		case 1:
			sh.labels++
		case 2:
			sh.samples++
		case 3:
			sh.exemplars++
			sh.strings += len(payload)
			if err := sh.measureExemplar(payload); err != nil {
				return err
			}
		case 4:
			sh.histograms++
			if err := sh.measureHistogram(payload); err != nil {
				return err
			}
		}
	}
	return nil
}

// errTooDense refuses a request whose elements cannot all be valid.
func errTooDense(what string, size int) error {
	return fmt.Errorf("%s cannot fit in %d bytes of valid series", what, size)
}

// smallSeries is the encoded size up to which a series is decoded without
// being counted first: it holds a few hundred elements at most, so decoding
// it costs no more than its share of the bound. Typical series (10 labels,
// one sample) take about 300 bytes.
const smallSeries = 512

// reserveStep is how much memory decoding takes from the request's ticket
// at a time, so that the in-flight limit costs no atomic operation per
// series.
const reserveStep = 1 << 20

// Decode decodes buf into req, reusing req's series and their
// label and sample slices. The series are counted first, and every series
// larger than smallSeries before it is decoded: its slices get exactly the
// room it needs (nothing grows by doubling). The request is refused with
// errTooDense, before the memory is allocated, once its elements would take
// more than maxDecodeAmplification times its size; reserve, when set, is
// asked for that memory as decoding goes.
func Decode(buf []byte, req *prompb.WriteRequest, reserve func(int) error) error {
	return decode(buf, req, nil, reserve)
}

// DecodeWithRaw decodes as Decode does and also sets *raw to the encoded
// bytes of every decoded series (aliasing buf), element i those of
// req.Timeseries[i], so that a series can be sent on without being encoded
// again (see AppendSeries). *raw keeps its room from one call to the next.
func DecodeWithRaw(buf []byte, req *prompb.WriteRequest, raw *[][]byte, reserve func(int) error) error {
	*raw = (*raw)[:0]
	return decode(buf, req, raw, reserve)
}

// AppendSeries appends a series to an encoded WriteRequest: its bytes as
// DecodeWithRaw gave them, or, when raw is nil, the series encoded.
func AppendSeries(dst []byte, ts *prompb.TimeSeries, raw []byte) []byte {
	if raw == nil {
		n := ts.Size()
		dst = binary.AppendUvarint(append(dst, 0x0a), uint64(n))
		start := len(dst)
		dst = append(dst, make([]byte, n)...)
		_, _ = ts.MarshalToSizedBuffer(dst[start:])
		return dst
	}
	return append(binary.AppendUvarint(append(dst, 0x0a), uint64(len(raw))), raw...)
}

// SeriesSize is how many bytes AppendSeries appends.
func SeriesSize(ts *prompb.TimeSeries, raw []byte) int {
	n := len(raw)
	if raw == nil {
		n = ts.Size()
	}
	return 1 + uvarintLen(uint64(n)) + n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func decode(buf []byte, req *prompb.WriteRequest, raw *[][]byte, reserve func(int) error) error {
	size := len(buf)
	budget := maxDecodeAmplification*size + decodeSlack
	// The series first: a request of millions of empty series is refused
	// before its series are allocated.
	series, err := countSeries(buf)
	if err != nil {
		return err
	}
	used := series * seriesMem // what the request's elements take
	tooDense := func() error {
		return errTooDense(fmt.Sprintf("%d series whose elements take %d bytes decoded", series, used), size)
	}
	if used > budget {
		return tooDense()
	}
	reserved := 0
	take := func() error {
		if reserve == nil || used <= reserved {
			return nil
		}
		step := max(reserveStep, used-reserved)
		if err := reserve(step); err != nil {
			return err
		}
		reserved += step
		return nil
	}
	if err := take(); err != nil {
		return err
	}
	if cap(req.Timeseries) < series {
		req.Timeseries = make([]prompb.TimeSeries, 0, series)
	}
	n := 0
	for len(buf) > 0 {
		num, typ, payload, _, consumed, err := field(buf)
		if err != nil {
			return err
		}
		buf = buf[consumed:]
		switch {
		case num == 1 && typ == 2:
			if n == series {
				return fmt.Errorf("more series than counted") // cannot happen: countSeries counts what this loop decodes
			}
			req.Timeseries = req.Timeseries[:n+1]
			ts := &req.Timeseries[n]
			if len(payload) <= smallSeries {
				// A small series cannot take much: decode it into the
				// room its slices have, and count it after.
				ts.Labels, ts.Samples = ts.Labels[:0], ts.Samples[:0]
				if err := decodeTimeSeries(payload, ts); err != nil {
					return fmt.Errorf("timeseries %d: %w", n, err)
				}
				used += len(ts.Labels)*labelMem + len(ts.Samples)*sampleMem
				if len(ts.Exemplars)+len(ts.Histograms) > 0 {
					used += len(ts.Exemplars)*exemplarMem + len(ts.Histograms)*histogramMem + 2*len(payload)
				}
			} else {
				var sh shape
				if err := sh.measureSeries(payload); err != nil {
					return fmt.Errorf("timeseries %d: %w", n, err)
				}
				if used += sh.memory(); used > budget {
					return errTooDense(fmt.Sprintf("a series of %d labels, %d samples, %d exemplars and %d histograms", sh.labels, sh.samples, sh.exemplars, sh.histograms), size)
				}
				if err := take(); err != nil {
					return err
				}
				ts.Labels = exactly(ts.Labels, sh.labels)
				ts.Samples = exactly(ts.Samples, sh.samples)
				if err := decodeTimeSeries(payload, ts); err != nil {
					return fmt.Errorf("timeseries %d: %w", n, err)
				}
			}
			if used > budget {
				return tooDense()
			}
			if err := take(); err != nil {
				return err
			}
			if raw != nil {
				*raw = append(*raw, payload)
			}
			n++
		case num == 3 && typ == 2:
			if used += MetadataMem + 2*len(payload); used > budget {
				return tooDense()
			}
			if err := take(); err != nil {
				return err
			}
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

// countSeries counts the series of an encoded request.
func countSeries(buf []byte) (int, error) {
	n := 0
	for len(buf) > 0 {
		if buf[0] == 0x0a { // field 1, length-delimited: a series
			l, k := binary.Uvarint(buf[1:])
			if k <= 0 || l > uint64(len(buf)-1-k) {
				return 0, errTruncated
			}
			buf = buf[1+k+int(l):]
			n++
			continue
		}
		num, typ, _, _, used, err := field(buf)
		if err != nil {
			return 0, err
		}
		if num == 1 && typ == 2 {
			// A series under a longer key than 0x0a (a varint with
			// padding): valid protobuf, and decoded as a series.
			n++
		}
		buf = buf[used:]
	}
	return n, nil
}

// exactly returns s emptied, with room for n elements: its own room when
// that is enough, else exactly n.
func exactly[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, 0, n)
	}
	return s[:0]
}

// decodeTimeSeries decodes one series into ts, whose label and sample
// slices the caller emptied.
func decodeTimeSeries(buf []byte, ts *prompb.TimeSeries) error {
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
			// Decoded in place: a label is 64 bytes, five of them pointers,
			// too much to copy (with write barriers) per label.
			if err := decodeLabel(payload, nextSlot(&ts.Labels)); err != nil {
				return err
			}
		case 2:
			if err := decodeSample(payload, nextSlot(&ts.Samples)); err != nil {
				return err
			}
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

// nextSlot lengthens *s by one element and returns it, reusing the room *s
// has; the element may hold what an earlier request left there.
func nextSlot[T any](s *[]T) *T {
	k := len(*s)
	if k < cap(*s) {
		*s = (*s)[:k+1]
	} else {
		var zero T
		*s = append(*s, zero)
	}
	return &(*s)[k]
}

// decodeLabel decodes a label into l, which may hold an earlier label.
func decodeLabel(buf []byte, l *prompb.Label) error {
	// Fast path: name then value, each shorter than 128 bytes.
	if len(buf) >= 4 && buf[0] == 0x0a && buf[1] < 0x80 {
		if n := 2 + int(buf[1]); n+2 <= len(buf) && buf[n] == 0x12 && buf[n+1] < 0x80 && n+2+int(buf[n+1]) == len(buf) {
			l.Name, l.Value = yoloString(buf[2:n]), yoloString(buf[n+2:])
			if l.XXX_unrecognized != nil || l.XXX_sizecache != 0 {
				l.XXX_unrecognized, l.XXX_sizecache = nil, 0
			}
			return nil
		}
	}
	*l = prompb.Label{}
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
			l.Name = yoloString(payload)
		case 2:
			l.Value = yoloString(payload)
		}
	}
	return nil
}

// decodeSample decodes a sample into s, which may hold an earlier sample.
func decodeSample(buf []byte, s *prompb.Sample) error {
	if s.XXX_unrecognized != nil || s.XXX_sizecache != 0 {
		s.XXX_unrecognized, s.XXX_sizecache = nil, 0
	}
	// Fast path: value (fixed64, field 1) then timestamp (varint, field 2).
	if len(buf) >= 10 && buf[0] == 0x09 && buf[9] == 0x10 {
		if ts, n := binary.Uvarint(buf[10:]); n > 0 && 10+n == len(buf) {
			s.Value = math.Float64frombits(binary.LittleEndian.Uint64(buf[1:9]))
			s.Timestamp = int64(ts)
			return nil
		}
	}
	s.Value, s.Timestamp = 0, 0
	for len(buf) > 0 {
		num, typ, _, val, used, err := field(buf)
		if err != nil {
			return err
		}
		buf = buf[used:]
		switch {
		case num == 1 && typ == 1:
			s.Value = math.Float64frombits(val)
		case num == 2 && typ == 0:
			s.Timestamp = int64(val)
		}
	}
	return nil
}

// Retained is the memory req's slices hold on to, up to their capacity:
// what a pool keeping req for the next request keeps.
func Retained(req *prompb.WriteRequest) int {
	m := seriesMem*cap(req.Timeseries) + MetadataMem*cap(req.Metadata)
	for _, ts := range req.Timeseries[:cap(req.Timeseries)] {
		m += labelMem*cap(ts.Labels) + sampleMem*cap(ts.Samples) + exemplarMem*cap(ts.Exemplars) + histogramMem*cap(ts.Histograms)
	}
	return m
}

// AppendWithoutLabel appends to dst the encoded series raw without its
// index-th label, which must be named name, and returns the result: a
// series that lost a label is sent on without being encoded again. raw
// must be a series as DecodeWithRaw gave it (a well-formed message, whose
// labels are its length-delimited fields 1, in the order decoded): only the
// fields up to the label are read. ok is false when raw has no such label;
// dst is returned unchanged then.
func AppendWithoutLabel(dst, raw []byte, index int, name string) (out []byte, ok bool) {
	seen := 0
	for off := 0; off < len(raw); {
		num, typ, payload, _, n, err := field(raw[off:])
		if err != nil || n == 0 {
			return dst, false
		}
		if num == 1 && typ == 2 { // a label, as the decoder counts them
			if seen == index {
				if !labelNamed(payload, name) {
					return dst, false
				}
				return append(append(dst, raw[:off]...), raw[off+n:]...), true
			}
			seen++
		}
		off += n
	}
	return dst, false
}

// labelNamed tells whether an encoded Label is named name.
func labelNamed(payload []byte, name string) bool {
	// Nearly always: the name first, shorter than 128 bytes.
	if n := len(name); n < 0x80 && len(payload) >= 2+n && payload[0] == 0x0a && int(payload[1]) == n {
		return string(payload[2:2+n]) == name
	}
	var l prompb.Label
	return decodeLabel(payload, &l) == nil && l.Name == name
}
