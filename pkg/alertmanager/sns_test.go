package alertmanager

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Each of AMP's SNS message rules (guide L3519): what is published, the
// attributes that say what changed, and the WARN event.
func TestSNSMessageRules(t *testing.T) {
	big := strings.Repeat("é", 200*1024) // 400 KB
	for _, tc := range []struct {
		name                 string
		message, subject     string
		attrs                map[string]string
		sms                  bool
		wantMessage, wantSub string
		wantAttrs            map[string]string
		wantEvent            string
	}{
		{name: "as it is", message: "m", subject: "s", attrs: map[string]string{"k": "v"},
			wantMessage: "m", wantSub: "s", wantAttrs: map[string]string{"k": "v"}},
		{name: "invalid UTF-8", message: "bad \xff", wantMessage: "Error - not a valid UTF-8 encoded string.",
			wantAttrs: map[string]string{"truncated": "true", "modified": "Message: Error - not a valid UTF-8 encoded string."},
			wantEvent: "Message has been modified because it is not a valid UTF-8 encoded string."},
		{name: "empty", message: "", wantMessage: "Error - Message should not be empty.",
			wantAttrs: map[string]string{"modified": "Message: Error - Message should not be empty."},
			wantEvent: "Message has been modified because the content was empty."},
		{name: "over 256 KB", message: big, wantMessage: big[:254*1024],
			wantAttrs: map[string]string{"truncated": "true", "modified": "Message: Error - Message has been truncated from 400 KB, because it exceeds the 256 KB size limit."},
			wantEvent: "Message has been truncated because it exceeds size limit, originSize=400K, truncatedSize=254K"},
		{name: "SMS over 1,600 characters", message: strings.Repeat("a", 1700), sms: true, wantMessage: strings.Repeat("a", 1600),
			wantAttrs: map[string]string{"truncated": "true", "modified": "Message: Error - Message has been truncated from 1700 characters, because it exceeds the 1600 character size limit."},
			wantEvent: "Message has been truncated because it exceeds size limit, originSize=1700, truncatedSize=1600"},
		{name: "subject not ASCII", message: "m", subject: "Störung", wantMessage: "m", wantSub: "Error - contains non printable ASCII characters.",
			wantAttrs: map[string]string{"modified": "Subject: Error - contains non-printable ASCII characters."},
			wantEvent: "Subject has been modified because it contains control or non-ASCII characters."},
		{name: "subject with a control character", message: "m", subject: "a\tb", wantMessage: "m", wantSub: "Error - contains non printable ASCII characters.",
			wantAttrs: map[string]string{"modified": "Subject: Error - contains non-printable ASCII characters."},
			wantEvent: "Subject has been modified because it contains control or non-ASCII characters."},
		{name: "subject over 100 characters", message: "m", subject: strings.Repeat("s", 120), wantMessage: "m", wantSub: strings.Repeat("s", 100),
			wantAttrs: map[string]string{"modified": "Subject: Error - Subject has been truncated from 120 characters, because it exceeds the 100 character size limit."},
			wantEvent: "Subject has been truncated because it exceeds size limit, originSize=120, truncatedSize=100"},
		{name: "invalid attributes", message: "m", attrs: map[string]string{"ok": "v", "AWS.reserved": "v", "bad key": "v", "empty": "", "a..b": "v"},
			wantMessage: "m", wantAttrs: map[string]string{"ok": "v", "modified": "MessageAttribute: Error - 4 of the message attributes have been removed because of invalid MessageAttributeKey or MessageAttributeValue."},
			wantEvent: "MessageAttributes has been removed because of invalid key/value, numberOfRemovedAttributes=4"},
		{name: "attributes over 256 KB with the message", message: strings.Repeat("m", 200*1024), attrs: map[string]string{"a": strings.Repeat("x", 40*1024), "b": strings.Repeat("y", 40*1024)},
			wantMessage: strings.Repeat("m", 200*1024), wantAttrs: map[string]string{"a": strings.Repeat("x", 40*1024), "modified": "MessageAttribute: Error - 1 of the message attributes have been removed, because it exceeds the 256KB size limit."},
			wantEvent: "MessageAttributes has been removed because it exceeds size limit, numberOfRemovedAttributes=1"},
		{name: "over 10 attributes", message: "m", attrs: map[string]string{"a0": "v", "a1": "v", "a2": "v", "a3": "v", "a4": "v", "a5": "v", "a6": "v", "a7": "v", "a8": "v", "a9": "v", "b0": "v"},
			wantMessage: "m", wantAttrs: map[string]string{"a0": "v", "a1": "v", "a2": "v", "a3": "v", "a4": "v", "a5": "v", "a6": "v", "a7": "v",
				"modified": "MessageAttribute: Error - 3 of the message attributes have been removed, because it exceeds the 10 message attributes limit."},
			wantEvent: "MessageAttributes has been removed because it exceeds the attributes limit, numberOfRemovedAttributes=3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := applySNSRules(tc.message, tc.subject, tc.attrs, tc.sms)
			require.Equal(t, tc.wantMessage, got.Message)
			require.Equal(t, tc.wantSub, got.Subject)
			if tc.wantAttrs == nil {
				tc.wantAttrs = map[string]string{}
			}
			require.Equal(t, tc.wantAttrs, got.Attributes)
			if tc.wantEvent == "" {
				require.Empty(t, got.Events)
			} else {
				require.Equal(t, []string{tc.wantEvent}, got.Events)
			}
		})
	}
}

// Whatever the rules change, what is published fits SNS's 256 KB: the
// message and every attribute's name, value and data type.
func TestSNSMessageFits(t *testing.T) {
	for _, tc := range []struct {
		message, subject string
		attrs            map[string]string
	}{
		{strings.Repeat("m", 262144), "", map[string]string{"k": "v"}},
		{strings.Repeat("m", 262100), strings.Repeat("s", 101), nil},
		{strings.Repeat("m", 262144), "Störung", nil},
		{strings.Repeat("m", 100*1024), "", map[string]string{"a": strings.Repeat("x", 100*1024), "b": strings.Repeat("y", 100*1024), "bad key": "v"}},
	} {
		got := applySNSRules(tc.message, tc.subject, tc.attrs, false)
		size := len(got.Message)
		for k, v := range got.Attributes {
			size += len(k) + len(v) + len("String")
		}
		require.LessOrEqual(t, size, 256*1024)
		require.LessOrEqual(t, len(got.Attributes), 10)
	}
}
