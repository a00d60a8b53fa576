package api

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"golang.org/x/time/rate"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/auth"
)

// Event is one audit record, in CloudTrail's shape.
type Event struct {
	EventVersion       string         `json:"eventVersion"`
	EventTime          string         `json:"eventTime"`
	EventSource        string         `json:"eventSource"`
	EventName          string         `json:"eventName"`
	AWSRegion          string         `json:"awsRegion"`
	SourceIPAddress    string         `json:"sourceIPAddress"`
	UserAgent          string         `json:"userAgent"`
	UserIdentity       *UserIdentity  `json:"userIdentity"`
	RequestParameters  map[string]any `json:"requestParameters"`
	ResponseElements   any            `json:"responseElements"`
	ErrorCode          string         `json:"errorCode,omitempty"`
	ErrorMessage       string         `json:"errorMessage,omitempty"`
	RequestID          string         `json:"requestID"`
	EventID            string         `json:"eventID"`
	ReadOnly           bool           `json:"readOnly"`
	EventType          string         `json:"eventType"`
	ManagementEvent    bool           `json:"managementEvent"`
	RecipientAccountID string         `json:"recipientAccountId,omitempty"`
}

// UserIdentity is CloudTrail's userIdentity. An access key ID is not a
// secret (CloudTrail records it); the secret is never anywhere near here.
type UserIdentity struct {
	Type        string `json:"type"`
	ARN         string `json:"arn,omitempty"`
	AccountID   string `json:"accountId,omitempty"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	UserName    string `json:"userName,omitempty"`
}

// maxAuditedBody bounds the request and response bodies kept in a record.
const maxAuditedBody = 64 << 10

// auditor writes events as JSON lines.
type auditor struct {
	mu     sync.Mutex
	out    io.Writer // nil: auditing is off
	region string
	logger log.Logger
	// anonymous bounds the records of unauthenticated calls, which anyone
	// can send: they must not rotate the trail away.
	anonymous *rate.Limiter
	// refusals bounds, per account, the records of refused calls (denied,
	// throttled, not found), which a caller can repeat at will.
	refusalsMu sync.Mutex
	refusals   map[string]*rate.Limiter
	dropped    atomic.Int64
	lastWarn   atomic.Int64
}

// Records of refused calls kept per second (and twice that in a burst):
// of all unauthenticated callers together, and of each account.
const (
	anonymousAuditRate = 50
	accountRefusalRate = 20
	maxRefusalAccounts = 10_000
)

func newAuditor(out io.Writer, region string, logger log.Logger) *auditor {
	return &auditor{out: out, region: region, logger: logger,
		anonymous: rate.NewLimiter(anonymousAuditRate, 2*anonymousAuditRate), refusals: map[string]*rate.Limiter{}}
}

// keep tells whether a refusal's record fits its caller's budget.
func (a *auditor) keep(id *auth.Identity) bool {
	if id == nil {
		return a.anonymous.Allow()
	}
	a.refusalsMu.Lock()
	defer a.refusalsMu.Unlock()
	l, ok := a.refusals[id.Account]
	if !ok {
		if len(a.refusals) >= maxRefusalAccounts {
			clear(a.refusals)
		}
		l = rate.NewLimiter(accountRefusalRate, 2*accountRefusalRate)
		a.refusals[id.Account] = l
	}
	return l.Allow()
}

// recorder captures a response for its audit record.
type recorder struct {
	http.ResponseWriter
	a      *auditor
	ev     *Event
	status int
	body   bytes.Buffer
	err    error // the refusal, when refused before the handler
}

// begin starts the record of a call; denied marks a call refused before
// its handler. The request ID is set on the response as AWS does.
func (a *auditor) begin(w http.ResponseWriter, r *http.Request, rt *Route, id *auth.Identity, denied bool) *recorder {
	reqID := newID()
	w.Header().Set("x-amzn-RequestId", reqID)
	rec := &recorder{ResponseWriter: w, a: a, status: http.StatusOK}
	if a.out == nil {
		return rec
	}
	ev := &Event{
		EventVersion: "1.08", EventTime: time.Now().UTC().Format(time.RFC3339), EventSource: "aps.amazonaws.com",
		AWSRegion: a.region, SourceIPAddress: sourceIP(r), UserAgent: truncate(r.UserAgent()),
		RequestID: reqID, EventID: newID(), EventType: "AwsApiCall",
		EventName: "Unknown", RequestParameters: requestParameters(r, rt),
	}
	if rt != nil {
		ev.EventName, ev.ReadOnly, ev.ManagementEvent = string(rt.Operation), rt.readOnly, rt.control
	}
	if id != nil {
		ev.UserIdentity = &UserIdentity{Type: "IAMUser", ARN: id.ARN(), AccountID: id.Account, AccessKeyID: id.AccessKeyID, UserName: id.User}
		ev.RecipientAccountID = id.Account
	}
	if denied && !a.keep(id) {
		a.dropped.Add(1)
		if now := time.Now().Unix(); now-a.lastWarn.Load() >= 60 {
			a.lastWarn.Store(now)
			level.Warn(a.logger).Log("msg", "audit records of refused calls dropped over their caller's rate", "dropped_total", a.dropped.Load(),
				"unauthenticated_per_second", anonymousAuditRate, "per_account_per_second", accountRefusalRate)
		}
		return rec
	}
	if denied || (rt != nil && rt.control) {
		rec.ev = ev
	}
	return rec
}

// Bounds of what a record keeps of a request's query.
const (
	maxAuditedParams = 20
	maxAuditedValues = 10
	maxAuditedValue  = 256
)

func truncateValue(s string) string {
	if len(s) > maxAuditedValue {
		return s[:maxAuditedValue] + "..."
	}
	return s
}

// requestParameters are the call's path parameters, query (without any
// signature) and, for control-plane calls, its JSON body.
func requestParameters(r *http.Request, rt *Route) map[string]any {
	p := map[string]any{}
	for _, name := range []string{"workspaceId", "resourceArn"} {
		if v := r.PathValue(name); v != "" {
			p[name] = truncate(v)
		}
	}
	n := 0
	for k, vs := range r.URL.Query() {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			continue // presigned credentials and signature
		}
		if n++; n > maxAuditedParams {
			break
		}
		kept := make([]string, 0, min(len(vs), maxAuditedValues))
		for _, v := range vs[:min(len(vs), maxAuditedValues)] {
			kept = append(kept, truncateValue(v))
		}
		p[truncateValue(k)] = kept
	}
	if v := r.Header.Get(orgIDHeader); v != "" {
		p["workspaceId"] = truncate(v)
	}
	if rt != nil && rt.control {
		if b, ok := r.Context().Value(bodyKey{}).([]byte); ok && len(b) > 0 && len(b) <= maxAuditedBody {
			var body map[string]any
			if json.Unmarshal(b, &body) == nil {
				for k, v := range body {
					p[k] = v
				}
			}
		}
	}
	return p
}

func (rec *recorder) WriteHeader(code int) {
	rec.status = code
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.ev != nil && rec.body.Len() < maxAuditedBody {
		rec.body.Write(b[:min(len(b), maxAuditedBody-rec.body.Len())])
	}
	return rec.ResponseWriter.Write(b)
}

// finish writes the record.
func (rec *recorder) finish() {
	ev := rec.ev
	if ev == nil {
		return
	}
	if rec.err != nil {
		ev.ErrorCode, ev.ErrorMessage = apierror.AWSType(apierror.CauseOf(rec.err)), rec.err.Error()
	} else if rec.status >= 300 {
		ev.ErrorCode = rec.Header().Get("x-amzn-ErrorType")
		if ev.ErrorCode == "" {
			ev.ErrorCode = http.StatusText(rec.status)
		}
		var msg struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(rec.body.Bytes(), &msg) == nil {
			ev.ErrorMessage = msg.Message + msg.Error
		} else {
			ev.ErrorMessage = strings.TrimSpace(rec.body.String())
		}
	} else if rec.body.Len() > 0 {
		var resp any
		if json.Unmarshal(rec.body.Bytes(), &resp) == nil {
			ev.ResponseElements = resp
		}
	}
	line, err := json.Marshal(ev)
	if err != nil {
		return
	}
	line = append(line, '\n')
	rec.a.mu.Lock()
	_, err = rec.a.out.Write(line)
	rec.a.mu.Unlock()
	if err != nil {
		level.Warn(rec.a.logger).Log("msg", "cannot write audit record", "event", ev.EventName, "err", err)
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
