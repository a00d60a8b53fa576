package controlplane

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/vigil-metrics/vigil/pkg/apierror"
)

func destination(arn string, qsp int64) []LoggingDestination {
	return []LoggingDestination{{CloudWatchLogs: CloudWatchLogDestination{LogGroupARN: arn}, Filters: LoggingFilter{QSPThreshold: qsp}}}
}

const testLogGroup = "arn:aws:logs:eu-west-1:111111111111:log-group:/aws/vendedlogs/queries:*"

// TestQueryLoggingLifecycle: one configuration per workspace, created,
// described, updated and deleted; retries with the same clientToken get
// their first answer; the configuration goes with its workspace.
func TestQueryLoggingLifecycle(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bkt := objstore.NewInMemBucket()
	s := testStore(bkt, &now)
	ctx := context.Background()
	const acct = "111111111111"
	ws, err := s.Create(ctx, acct, CreateInput{})
	require.NoError(t, err)

	_, err = s.DescribeQueryLogging(ctx, acct, ws.ID)
	require.Equal(t, apierror.NotFound, apierror.CauseOf(err))
	_, err = s.UpdateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 1), "")
	require.Equal(t, apierror.NotFound, apierror.CauseOf(err))
	require.Equal(t, apierror.NotFound, apierror.CauseOf(s.DeleteQueryLogging(ctx, acct, ws.ID, "")))

	cfg, err := s.CreateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 1000), "tok-c")
	require.NoError(t, err)
	require.Equal(t, StatusActive, cfg.Status)
	again, err := s.CreateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 1000), "tok-c")
	require.NoError(t, err, "a retried create gets its first answer")
	require.Equal(t, cfg.CreatedAt, again.CreatedAt)
	_, err = s.CreateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 5), "tok-c")
	require.Equal(t, apierror.Conflict, apierror.CauseOf(err), "the token with other parameters")
	require.Equal(t, apierror.IDClientTokenReused, apierror.From(err).ID)
	_, err = s.CreateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 1000), "")
	require.Equal(t, apierror.Conflict, apierror.CauseOf(err), "one configuration per workspace")
	require.Equal(t, apierror.IDQueryLoggingExists, apierror.From(err).ID)
	_, err = s.DescribeQueryLogging(ctx, "222222222222", ws.ID)
	require.Equal(t, apierror.NotFound, apierror.CauseOf(err), "another account's workspace is not visible")

	now = now.Add(time.Minute)
	_, err = s.UpdateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 7), "tok-u")
	require.NoError(t, err)
	got, err := s.DescribeQueryLogging(ctx, acct, ws.ID)
	require.NoError(t, err)
	require.Equal(t, int64(7), got.Destinations[0].Filters.QSPThreshold)
	require.Equal(t, cfg.CreatedAt, got.CreatedAt)
	require.Equal(t, now.UTC(), got.ModifiedAt)
	_, err = s.CreateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 1000), "tok-c")
	require.Equal(t, apierror.Conflict, apierror.CauseOf(err), "a late retry must not be answered as if it applied")

	// The data plane reads it from the status cache: another replica's
	// store sees it too.
	other := testStore(bkt, &now)
	seen, err := other.QueryLogging(ctx, ws.ID)
	require.NoError(t, err)
	require.Equal(t, int64(7), seen.Destinations[0].Filters.QSPThreshold)

	require.NoError(t, s.DeleteQueryLogging(ctx, acct, ws.ID, "tok-d"))
	require.NoError(t, s.DeleteQueryLogging(ctx, acct, ws.ID, "tok-d"), "a retried delete succeeds")
	require.Equal(t, apierror.NotFound, apierror.CauseOf(s.DeleteQueryLogging(ctx, acct, ws.ID, "")))
	_, err = s.UpdateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 7), "tok-u")
	require.Equal(t, apierror.NotFound, apierror.CauseOf(err))

	// Deleting the workspace deletes its configuration.
	_, err = s.CreateQueryLogging(ctx, acct, ws.ID, destination(testLogGroup, 1), "")
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, acct, ws.ID))
	_, err = s.QueryLogging(ctx, ws.ID)
	require.Equal(t, apierror.NotFound, apierror.CauseOf(err))
	found, err := bkt.Exists(ctx, objectName(ws.ID))
	require.NoError(t, err)
	require.False(t, found)
}

func TestParseDestinations(t *testing.T) {
	for _, tc := range []struct {
		name, body, field, msg string
	}{
		{"ok", `[{"cloudWatchLogs":{"logGroupArn":"` + testLogGroup + `"},"filters":{"qspThreshold":0}}]`, "", ""},
		{"gov partition", `[{"cloudWatchLogs":{"logGroupArn":"arn:aws-us-gov:logs:us-gov-west-1:111111111111:log-group:a#b_c.d-e:*"},"filters":{"qspThreshold":1}}]`, "", ""},
		{"missing", ``, "destinations", "Value null at 'destinations' failed to satisfy constraint: Member must not be null"},
		{"empty", `[]`, "destinations", "Member must have length greater than or equal to 1"},
		{"two", `[{},{}]`, "destinations", "Member must have length less than or equal to 1"},
		{"no cloudWatchLogs", `[{"filters":{"qspThreshold":1}}]`, "destinations.1.member.cloudWatchLogs", "Member must not be null"},
		{"no filters", `[{"cloudWatchLogs":{"logGroupArn":"` + testLogGroup + `"}}]`, "destinations.1.member.filters", "Member must not be null"},
		{"no arn", `[{"cloudWatchLogs":{},"filters":{"qspThreshold":1}}]`, "destinations.1.member.cloudWatchLogs.logGroupArn", "Member must not be null"},
		{"no threshold", `[{"cloudWatchLogs":{"logGroupArn":"` + testLogGroup + `"},"filters":{}}]`, "destinations.1.member.filters.qspThreshold", "Member must not be null"},
		{"negative threshold", `[{"cloudWatchLogs":{"logGroupArn":"` + testLogGroup + `"},"filters":{"qspThreshold":-1}}]`, "destinations.1.member.filters.qspThreshold", "Value '-1' at 'destinations.1.member.filters.qspThreshold' failed to satisfy constraint: Member must have value greater than or equal to 0"},
		{"s3 arn", `[{"cloudWatchLogs":{"logGroupArn":"arn:aws:s3:::bucket"},"filters":{"qspThreshold":1}}]`, "destinations.1.member.cloudWatchLogs.logGroupArn", "Member must satisfy regular expression pattern"},
		{"no :* suffix", `[{"cloudWatchLogs":{"logGroupArn":"arn:aws:logs:us-east-1:111111111111:log-group:x"},"filters":{"qspThreshold":1}}]`, "destinations.1.member.cloudWatchLogs.logGroupArn", "Member must satisfy regular expression pattern"},
		{"embedded", `[{"cloudWatchLogs":{"logGroupArn":"x` + testLogGroup + `"},"filters":{"qspThreshold":1}}]`, "destinations.1.member.cloudWatchLogs.logGroupArn", "Member must satisfy regular expression pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in *[]destinationJSON
			if tc.body != "" {
				in = new([]destinationJSON)
				require.NoError(t, json.Unmarshal([]byte(tc.body), in))
			}
			dests, err := parseDestinations(in)
			if tc.field == "" {
				require.NoError(t, err)
				require.Len(t, dests, 1)
				return
			}
			e := apierror.From(err)
			require.Equal(t, apierror.BadData, e.Cause)
			require.Equal(t, tc.field, e.Field)
			require.Contains(t, e.Msg, tc.msg)
			require.Contains(t, e.Msg, "1 validation error detected: ")
		})
	}
}
