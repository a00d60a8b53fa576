package controlplane

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-metrics/vigil/pkg/apierror"
	"github.com/vigil-metrics/vigil/pkg/tenant"
)

// maxControlBody bounds control-plane request bodies: the largest is a rule
// groups namespace's, the base64 of a rules file of AMP's 1 MB quota (the
// front door holds every other route to 1 MB).
const maxControlBody = 2 << 20

// Handler serves the workspace operations of AMP's REST API.
type Handler struct {
	store  *Store
	cfg    Config
	owners Owners // nil: this replica writes every account
	// defaultRetentionDays is the retention of a workspace that set none.
	defaultRetentionDays int
	rulerLimits          RulerLimits        // nil: AMP's quotas
	amLimits             AlertmanagerLimits // nil: AMP's quotas
}

// NewHandler returns the HTTP handlers over store. Writes to an account's
// documents are handed to the account's owner among owners (nil: this
// replica writes every account, as a single replica does).
//
// defaultRetention is the retention DescribeWorkspaceConfiguration shows
// for a workspace that set none: the compactor's.
func NewHandler(cfg Config, store *Store, owners Owners, defaultRetention time.Duration) *Handler {
	return &Handler{store: store, cfg: cfg, owners: owners, defaultRetentionDays: int(defaultRetention / (24 * time.Hour))}
}

// bodyTooLarge is the error of a request body over maxControlBody.
func bodyTooLarge() error {
	return apierror.New(apierror.TooLarge, apierror.IDRequestTooLarge, "The request body is larger than %d bytes.", maxControlBody)
}

// readBody reads a request body of at most maxControlBody bytes.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, bodyTooLarge()
	}
	if err != nil {
		return nil, validation("Cannot read the request body: %v", err)
	}
	return body, nil
}

// handOver forwards a write to the account's owner and reports true, unless
// this replica is the owner. The body is bounded first, wherever the
// request ends up being read.
func (h *Handler) handOver(w http.ResponseWriter, r *http.Request, account string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
	fwd, err := h.owner(r, account)
	if err != nil {
		apierror.WriteAWS(w, err)
		return true
	}
	if fwd == nil {
		return false
	}
	fwd.ServeHTTP(w, r)
	return true
}

type statusJSON struct {
	StatusCode string `json:"statusCode"`
}

type workspaceJSON struct {
	Alias              string            `json:"alias,omitempty"`
	ARN                string            `json:"arn"`
	CreatedAt          float64           `json:"createdAt"`
	KMSKeyARN          string            `json:"kmsKeyArn,omitempty"`
	PrometheusEndpoint string            `json:"prometheusEndpoint,omitempty"`
	Status             statusJSON        `json:"status"`
	Tags               map[string]string `json:"tags,omitempty"`
	WorkspaceID        string            `json:"workspaceId"`
}

func (h *Handler) describe(r *http.Request, ws *Workspace, withEndpoint bool) workspaceJSON {
	out := workspaceJSON{
		Alias:       ws.Alias,
		ARN:         ws.ARN,
		CreatedAt:   float64(ws.CreatedAt.UnixMilli()) / 1000,
		KMSKeyARN:   ws.KMSKeyARN,
		Status:      statusJSON{StatusCode: ws.Status},
		Tags:        ws.Tags,
		WorkspaceID: ws.ID,
	}
	if withEndpoint {
		out.PrometheusEndpoint = h.endpoint(r, ws.ID)
	}
	return out
}

// endpoint is the workspace's Prometheus-compatible base URL; remote write
// goes to <endpoint>api/v1/remote_write and queries to <endpoint>api/v1/query.
func (h *Handler) endpoint(r *http.Request, id string) string {
	base := strings.TrimSuffix(h.cfg.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + "/workspaces/" + id + "/"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func validation(format string, args ...any) error {
	return apierror.New(apierror.BadData, apierror.IDValidation, format, args...)
}

func account(r *http.Request) (string, error) {
	a, ok := tenant.Account(r.Context())
	if !ok {
		return "", apierror.New(apierror.Internal, apierror.IDMissingTenant, "no caller identity on the request")
	}
	return a, nil
}

// kmsKeyARNRe is AMP's KmsKeyArn pattern, with its 20 to 2048 length.
var kmsKeyARNRe = regexp.MustCompile(`^arn:aws[-a-z]*:kms:[-a-z0-9]+:[0-9]{12}:key/[-a-f0-9]+$`)

// tagRe is AMP's TagKey and TagValue pattern.
var tagRe = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

func validateTags(tags map[string]string) error {
	if len(tags) > 50 { // AMP quota: 50 tags per resource.
		return apierror.Invalid("tags", "A resource can have at most 50 tags, got %d.", len(tags))
	}
	folded := make(map[string]string, len(tags))
	for k, v := range tags {
		// Condition keys match tag keys case-insensitively (as IAM's do):
		// keys differing only in case would make aws:ResourceTag ambiguous.
		if other, dup := folded[strings.ToLower(k)]; dup {
			return apierror.Invalid("tags", "Tag keys %q and %q differ only in case.", other, k)
		}
		folded[strings.ToLower(k)] = k
		if n := utf8.RuneCountInString(k); n < 1 || n > 128 || !tagRe.MatchString(k) {
			return apierror.Invalid("tags", "Tag key %q must be 1 to 128 letters, digits, spaces and _.:/=+-@.", k)
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return apierror.Invalid("tags", "Tag key %q uses the reserved prefix aws:.", k)
		}
		if utf8.RuneCountInString(v) > 256 || !tagRe.MatchString(v) {
			return apierror.Invalid("tags", "Tag value of %q must be at most 256 letters, digits, spaces and _.:/=+-@.", k)
		}
	}
	return nil
}

// Create handles CreateWorkspace: POST /workspaces.
func (h *Handler) Create(w http.ResponseWriter, r *http.Request) {
	acct, err := account(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if h.handOver(w, r, acct) {
		return
	}
	var in struct {
		Alias       *string           `json:"alias"`
		ClientToken string            `json:"clientToken"`
		KMSKeyARN   string            `json:"kmsKeyArn"`
		Tags        map[string]string `json:"tags"`
	}
	body, err := readBody(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			apierror.WriteAWS(w, validation("The request body is not valid JSON: %v", err))
			return
		}
	}
	if err := checkClientToken(in.ClientToken); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if in.KMSKeyARN != "" && (len(in.KMSKeyARN) < 20 || len(in.KMSKeyARN) > 2048 || !kmsKeyARNRe.MatchString(in.KMSKeyARN)) {
		apierror.WriteAWS(w, apierror.Invalid("kmsKeyArn", "kmsKeyArn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), at most 2048 characters."))
		return
	}
	ci := CreateInput{Tags: in.Tags, KMSKeyARN: in.KMSKeyARN, ClientToken: in.ClientToken}
	if in.Alias != nil {
		if n := utf8.RuneCountInString(*in.Alias); n < 1 || n > 100 {
			apierror.WriteAWS(w, apierror.Invalid("alias", "alias must be 1 to 100 characters long."))
			return
		}
		ci.Alias = *in.Alias
	}
	if err := validateTags(in.Tags); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	ws, err := h.store.Create(r.Context(), acct, ci)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		ARN         string            `json:"arn"`
		KMSKeyARN   string            `json:"kmsKeyArn,omitempty"`
		Status      statusJSON        `json:"status"`
		Tags        map[string]string `json:"tags,omitempty"`
		WorkspaceID string            `json:"workspaceId"`
	}{ws.ARN, ws.KMSKeyARN, statusJSON{StatusCode: ws.Status}, ws.Tags, ws.ID})
}

// Describe handles DescribeWorkspace: GET /workspaces/{workspaceId}.
func (h *Handler) Describe(w http.ResponseWriter, r *http.Request) {
	acct, err := account(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	ws, err := h.store.Describe(r.Context(), acct, r.PathValue("workspaceId"))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"workspace": h.describe(r, ws, true)})
}

// Delete handles DeleteWorkspace: DELETE /workspaces/{workspaceId}.
func (h *Handler) Delete(w http.ResponseWriter, r *http.Request) {
	acct, err := account(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if h.handOver(w, r, acct) {
		return
	}
	if err := h.store.Delete(r.Context(), acct, r.PathValue("workspaceId")); err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// List handles ListWorkspaces: GET /workspaces?alias=&maxResults=&nextToken=.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) {
	acct, err := account(r)
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	q := r.URL.Query()
	maxResults, err := maxResultsOf(q.Get("maxResults"))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	start := 0
	if tok := q.Get("nextToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		n, convErr := strconv.Atoi(string(raw))
		if err != nil || convErr != nil || n < 0 {
			apierror.WriteAWS(w, apierror.Invalid("nextToken", "nextToken is not valid."))
			return
		}
		start = n
	}
	all, err := h.store.List(r.Context(), acct, q.Get("alias"))
	if err != nil {
		apierror.WriteAWS(w, err)
		return
	}
	if start > len(all) {
		start = len(all)
	}
	end := min(start+maxResults, len(all))
	page := make([]workspaceJSON, 0, end-start)
	for _, ws := range all[start:end] {
		page = append(page, h.describe(r, ws, false))
	}
	resp := map[string]any{"workspaces": page}
	if end < len(all) {
		resp["nextToken"] = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	writeJSON(w, http.StatusOK, resp)
}
