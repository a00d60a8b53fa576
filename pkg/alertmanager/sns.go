package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/types"
	commoncfg "github.com/prometheus/common/config"
)

// SNS's limits, as AMP's SNS receiver applies them (guide L3519).
const (
	snsMaxBytes          = 256 * 1024 // message and attributes together
	snsMaxSubjectChars   = 100
	snsMaxAttributeKey   = 256
	snsMaxSMSRunes       = 1600
	snsReserve           = 2048 // for the attributes truncated and modified
	snsMaxAttributes     = 10
	attrTruncated        = "truncated"
	attrModified         = "modified"
	msgNotUTF8           = "Error - not a valid UTF-8 encoded string."
	msgEmpty             = "Error - Message should not be empty."
	subjectNotASCII      = "Error - contains non printable ASCII characters."
	subjectNotASCIIAttr  = "Subject: Error - contains non-printable ASCII characters."
	eventEmpty           = "Message has been modified because the content was empty."
	eventNotUTF8         = "Message has been modified because it is not a valid UTF-8 encoded string."
	eventSubjectModified = "Subject has been modified because it contains control or non-ASCII characters."
)

// snsMessage is what one notification publishes, and what AMP's rules
// changed of it: the attribute "modified" says so to the subscribers, the
// events (WARN lines of the workspace's vended logs) to the workspace.
type snsMessage struct {
	Message, Subject string
	Attributes       map[string]string
	Events           []string
}

var attributeKeyRe = regexp.MustCompile(`^[A-Za-z0-9_\-.]+$`)

// validAttribute is SNS's rule for a message attribute: a name of 1 to
// 256 letters, digits, _ - and ., not starting with AWS. or Amazon., nor
// starting or ending with a period, nor holding two in a row; a value that
// is non-empty UTF-8.
func validAttribute(k, v string) bool {
	lk := strings.ToLower(k)
	return len(k) <= snsMaxAttributeKey && attributeKeyRe.MatchString(k) &&
		!strings.HasPrefix(lk, "aws.") && !strings.HasPrefix(lk, "amazon.") &&
		!strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".") && !strings.Contains(k, "..") &&
		v != "" && utf8.ValidString(v)
}

// applySNSRules applies AMP's validation and truncation rules of SNS
// messages (guide L3519) to a rendered message, subject and attributes;
// maxMessage is SNS's limit for the destination (256 KB, or 1,600
// characters for an SMS).
func applySNSRules(message, subject string, attrs map[string]string, sms bool) snsMessage {
	out := snsMessage{Attributes: map[string]string{}}
	var modified []string
	note := func(attr, event string) {
		modified = append(modified, attr)
		if event != "" {
			out.Events = append(out.Events, event)
		}
	}
	removed := 0
	for k, v := range attrs {
		if k == attrTruncated || k == attrModified || !validAttribute(k, v) {
			removed++
			continue
		}
		out.Attributes[k] = v
	}
	if removed > 0 {
		note(fmt.Sprintf("MessageAttribute: Error - %d of the message attributes have been removed because of invalid MessageAttributeKey or MessageAttributeValue.", removed),
			fmt.Sprintf("MessageAttributes has been removed because of invalid key/value, numberOfRemovedAttributes=%d", removed))
	}
	if subject != "" {
		switch {
		case !printableASCII(subject):
			subject = subjectNotASCII
			note(subjectNotASCIIAttr, eventSubjectModified)
		case len(subject) > snsMaxSubjectChars:
			note(fmt.Sprintf("Subject: Error - Subject has been truncated from %d characters, because it exceeds the %d character size limit.", len(subject), snsMaxSubjectChars),
				fmt.Sprintf("Subject has been truncated because it exceeds size limit, originSize=%d, truncatedSize=%d", len(subject), snsMaxSubjectChars))
			subject = subject[:snsMaxSubjectChars]
		}
	}
	switch {
	case !utf8.ValidString(message):
		message = msgNotUTF8
		out.Attributes[attrTruncated] = "true"
		note("Message: "+msgNotUTF8, eventNotUTF8)
	case message == "":
		message = msgEmpty
		note("Message: "+msgEmpty, eventEmpty)
	case sms && utf8.RuneCountInString(message) > snsMaxSMSRunes:
		origin := utf8.RuneCountInString(message)
		message = string([]rune(message)[:snsMaxSMSRunes])
		out.Attributes[attrTruncated] = "true"
		note(fmt.Sprintf("Message: Error - Message has been truncated from %d characters, because it exceeds the %d character size limit.", origin, snsMaxSMSRunes),
			fmt.Sprintf("Message has been truncated because it exceeds size limit, originSize=%d, truncatedSize=%d", origin, snsMaxSMSRunes))
	}
	// SNS takes at most 10 attributes: the tenant's keep 8 (truncated and
	// modified may follow), the last names dropped first.
	keys := make([]string, 0, len(out.Attributes))
	for k := range out.Attributes {
		if k != attrTruncated {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > snsMaxAttributes-2 {
		for _, k := range keys[snsMaxAttributes-2:] {
			delete(out.Attributes, k)
		}
		n := len(keys) - (snsMaxAttributes - 2)
		keys = keys[:snsMaxAttributes-2]
		note(fmt.Sprintf("MessageAttribute: Error - %d of the message attributes have been removed, because it exceeds the %d message attributes limit.", n, snsMaxAttributes),
			fmt.Sprintf("MessageAttributes has been removed because it exceeds the attributes limit, numberOfRemovedAttributes=%d", n))
	}
	// The message and its attributes (names, values and data types) fit
	// SNS's 256 KB together, with room (snsReserve) for truncated and
	// modified: attributes go first, last names first, then the message is
	// cut.
	attrBytes := 0
	for _, k := range keys {
		attrBytes += len(k) + len(out.Attributes[k]) + len("String")
	}
	room := snsMaxBytes - snsReserve
	dropped := 0
	drop := func(fits func() bool) {
		for i := len(keys) - 1; i >= 0 && !fits(); i-- {
			attrBytes -= len(keys[i]) + len(out.Attributes[keys[i]]) + len("String")
			delete(out.Attributes, keys[i])
			keys = keys[:i]
			dropped++
		}
	}
	if len(message) > room {
		// The message alone is over: it is cut to leave its attributes
		// room, unless they take over half of it.
		drop(func() bool { return attrBytes <= room/2 })
	} else {
		drop(func() bool { return len(message)+attrBytes <= room })
	}
	if dropped > 0 {
		note(fmt.Sprintf("MessageAttribute: Error - %d of the message attributes have been removed, because it exceeds the 256KB size limit.", dropped),
			fmt.Sprintf("MessageAttributes has been removed because it exceeds size limit, numberOfRemovedAttributes=%d", dropped))
	}
	if len(message)+attrBytes > room {
		origin := len(message)
		message = truncateUTF8(message, room-attrBytes)
		out.Attributes[attrTruncated] = "true"
		note(fmt.Sprintf("Message: Error - Message has been truncated from %d KB, because it exceeds the 256 KB size limit.", (origin+1023)/1024),
			fmt.Sprintf("Message has been truncated because it exceeds size limit, originSize=%dK, truncatedSize=%dK", (origin+1023)/1024, len(message)/1024))
	}
	if len(modified) > 0 {
		out.Attributes[attrModified] = strings.Join(modified, " ")
	}
	out.Message, out.Subject = message, subject
	return out
}

// printableASCII tells whether s holds only printable ASCII characters.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// truncateUTF8 cuts s to at most n bytes, on a character boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// snsNotifier publishes a workspace's notifications to SNS with AMP's
// message rules, through the workspace's receivers firewall; it signs with
// the receiver's own keys (or the process's, where the operator allows).
type snsNotifier struct {
	conf   *config.SNSConfig
	tmpl   *template.Template
	logger *slog.Logger
	client *http.Client
	// event records a WARN or ERROR of the workspace (its vended logs).
	event func(level, msg string)

	mu      sync.Mutex
	clients map[string]*sns.Client // by endpoint
}

func (n *snsNotifier) Notify(ctx context.Context, alerts ...*types.Alert) (bool, error) {
	var tmplErr error
	data := notify.GetTemplateData(ctx, n.tmpl, alerts, n.logger)
	tmpl := notify.TmplText(n.tmpl, data, &tmplErr)
	message, subject := tmpl(n.conf.Message), tmpl(n.conf.Subject)
	topic, phone, target := tmpl(n.conf.TopicARN), tmpl(n.conf.PhoneNumber), tmpl(n.conf.TargetARN)
	attrs := make(map[string]string, len(n.conf.Attributes))
	for k, v := range n.conf.Attributes {
		attrs[tmpl(k)] = tmpl(v)
	}
	apiURL := tmpl(n.conf.APIUrl)
	if tmplErr != nil {
		return false, notify.NewErrorWithReason(notify.ClientErrorReason, fmt.Errorf("execute the SNS receiver's templates: %w", tmplErr))
	}
	msg := applySNSRules(message, subject, attrs, phone != "")
	for _, e := range msg.Events {
		n.event("WARN", e)
	}
	in := &sns.PublishInput{Message: aws.String(msg.Message), MessageAttributes: map[string]snstypes.MessageAttributeValue{}}
	if msg.Subject != "" {
		in.Subject = aws.String(msg.Subject)
	}
	for k, v := range msg.Attributes {
		in.MessageAttributes[k] = snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	switch {
	case topic != "":
		in.TopicArn = aws.String(topic)
		if strings.HasSuffix(topic, ".fifo") {
			key, err := notify.ExtractGroupKey(ctx)
			if err != nil {
				return false, err
			}
			in.MessageDeduplicationId, in.MessageGroupId = aws.String(key.Hash()), aws.String(key.Hash())
		}
	case phone != "":
		in.PhoneNumber = aws.String(phone)
	default:
		in.TargetArn = aws.String(target)
	}
	client, err := n.snsClient(ctx, apiURL)
	if err != nil {
		return true, err
	}
	if _, err := client.Publish(ctx, in); err != nil {
		// The error is worded without AWS's message, which can name the
		// identity that signed (the operator's, with process credentials):
		// Alertmanager logs it, and the vended logs take that line.
		var respErr *smithyhttp.ResponseError
		code := 0
		if errors.As(err, &respErr) && respErr.Response != nil {
			code = respErr.Response.StatusCode
		}
		var apiErr smithy.APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.ErrorCode() == "AuthorizationError":
			err = fmt.Errorf("AMP is not authorized to perform: SNS:Publish on resource: %s because no resource-based policy allows the SNS:Publish action", topic+phone+target)
		case errors.As(err, &apiErr):
			err = fmt.Errorf("SNS Publish failed: %s (HTTP %d)", apiErr.ErrorCode(), code)
		}
		if code != 0 {
			return code/100 == 5 || code == http.StatusTooManyRequests, notify.NewErrorWithReason(notify.GetFailureReasonFromStatusCode(code), err)
		}
		return true, err
	}
	return false, nil
}

// snsClient is the SNS client of the receiver: its region, its keys (and
// role), its endpoint where the operator allows one, and this workspace's
// HTTP client. With keys of its own, nothing of the process's AWS
// configuration (environment, shared files, CA bundle) is read; without,
// the process's credentials sign (where the operator allows it).
func (n *snsNotifier) snsClient(ctx context.Context, apiURL string) (*sns.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.clients[apiURL]; ok {
		return c, nil
	}
	sv := n.conf.Sigv4
	var creds aws.CredentialsProvider
	if sv.AccessKey != "" {
		creds = credentials.NewStaticCredentialsProvider(sv.AccessKey, string(sv.SecretKey), "")
	} else {
		// The operator's own credential chain (the instance role's
		// metadata service included) is reached with the SDK's client:
		// the tenant names nothing of it.
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(sv.Region))
		if err != nil {
			return nil, fmt.Errorf("SNS client: the process's AWS credentials: %w", err)
		}
		creds = cfg.Credentials
	}
	if sv.RoleARN != "" {
		stsClient := sts.New(sts.Options{Region: sv.Region, Credentials: creds, HTTPClient: n.client})
		creds = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, sv.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			if sv.ExternalID != "" {
				o.ExternalID = aws.String(sv.ExternalID)
			}
		}))
	}
	o := sns.Options{Region: sv.Region, Credentials: creds, HTTPClient: n.client}
	if apiURL != "" {
		o.BaseEndpoint = aws.String(apiURL)
	}
	// One client per endpoint: its credentials (and an assumed role's)
	// are cached across notifications. A templated api_url is bounded.
	if n.clients == nil || len(n.clients) >= 16 {
		n.clients = map[string]*sns.Client{}
	}
	c := sns.New(o)
	n.clients[apiURL] = c
	return c, nil
}

// snsIntegrations are a receiver's SNS integrations with AMP's rules,
// each with its http_config's client, dialling through dial.
func snsIntegrations(rcv config.Receiver, tmpl *template.Template, logger *slog.Logger, dial commoncfg.DialContextFunc, event func(level, msg string)) ([]notify.Integration, error) {
	out := make([]notify.Integration, 0, len(rcv.SNSConfigs))
	for i, c := range rcv.SNSConfigs {
		hc := commoncfg.DefaultHTTPClientConfig
		if c.HTTPConfig != nil {
			hc = *c.HTTPConfig
		}
		client, err := commoncfg.NewClientFromConfig(hc, "sns", commoncfg.WithDialContextFunc(dial))
		if err != nil {
			return nil, err
		}
		out = append(out, notify.NewIntegration(&snsNotifier{conf: c, tmpl: tmpl, logger: logger.With("integration", "sns"), client: client, event: event}, c, "sns", i, rcv.Name))
	}
	return out, nil
}
