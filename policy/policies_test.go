package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParsePolicies(t *testing.T) {
	in := `
segment: {max_bytes: 32MiB}
hot: {max_age: 15m}
cold: {delete_delay: 2h}
migrator:
  schedule: "*/5 * * * *"
  concurrency: 4
  max_bytes_per_second: 1GiB
policies:
  - name: trading
    streams: ["IF*", "IC*"]
    segment: {max_bytes: 16MiB, max_age: 5m}
    hot:  {max_age: 1h}
    warm: {max_age: 24h}
    cold: {max_age: 365d}
  - &base
    name: audit
    streams:
      - audit.*
    warm: {max_age: 7d}
  - <<: *base
    name: audit2
    streams: [audit2]
  - name: empty sections
    streams: ["x?"]
    hot:
    warm: {}
`
	got, err := Parse("p.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Segment.MaxBytes = 32 * MiB
	want.Hot.MaxAge = 15 * time.Minute
	want.Cold.DeleteDelay = 2 * time.Hour
	want.Migrator = MigratorConfig{Schedule: "*/5 * * * *", Concurrency: 4, MaxBytesPerSecond: GiB}
	want.Policies = []Policy{
		{Name: "trading", Streams: []string{"IF*", "IC*"}, Segment: SegmentConfig{MaxBytes: 16 * MiB, MaxAge: 5 * time.Minute},
			HotMaxAge: time.Hour, WarmMaxAge: 24 * time.Hour, ColdMaxAge: 365 * Day},
		{Name: "audit", Streams: []string{"audit.*"}, WarmMaxAge: 7 * Day},
		{Name: "audit2", Streams: []string{"audit2"}, WarmMaxAge: 7 * Day},
		{Name: "empty sections", Streams: []string{"x?"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// The inherited settings come from the top level.
	if p := got.PolicyFor("audit.x"); p.HotMaxAge != 15*time.Minute || p.Segment != (SegmentConfig{MaxBytes: 32 * MiB, MaxAge: 10 * time.Minute}) {
		t.Errorf("PolicyFor(audit.x) = %+v", p)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []loc
	}{
		{"unknown policy field", "policies:\n  - name: a\n    streams: [x]\n    retention: 1d\n", []loc{{4, "policies[0].retention", "unknown field (want one of name, streams, segment, hot, warm, cold, columns)"}}},
		{"unknown field in a tier", "policies:\n  - name: a\n    streams: [x]\n    warm: {max_bytes: 1GiB}\n", []loc{{4, "policies[0].warm.max_bytes", "unknown field (want one of max_age)"}}},
		{"policies not a list", "policies: {name: a}\n", []loc{{1, "policies", "must be a list, not a mapping"}}},
		{"policy not a mapping", "policies:\n  - trading\n", []loc{{2, "policies[0]", "must be a mapping, not a string"}}},
		{"streams not a list", "policies:\n  - {name: a, streams: IF*}\n", []loc{{2, "policies[0].streams", "must be a list, not a string"}}},
		{"glob not a string", "policies:\n  - {name: a, streams: [x, 5]}\n", []loc{{2, "policies[0].streams[1]", "must be a string, not an integer"}}},
		{"missing name and streams", "policies:\n  - warm: {max_age: 1d}\n", []loc{{2, "policies[0].name", "every policy needs a name"}, {2, "policies[0].streams", "at least one glob"}}},
		{"empty name", "policies:\n  - {name: '', streams: [x]}\n", []loc{{2, "policies[0].name", "every policy needs a name"}}},
		{"duplicate name", "policies:\n  - {name: a, streams: [x]}\n  - {name: a, streams: [y]}\n", []loc{{3, "policies[1].name", `"a" is already the name of policies[0]`}}},
		{"empty streams", "policies:\n  - {name: a, streams: []}\n", []loc{{2, "policies[0].streams", "at least one glob"}}},
		{"bad glob", "policies:\n  - name: a\n    streams:\n      - ok*\n      - 'IF[0-9'\n", []loc{{5, "policies[0].streams[1]", `"IF[0-9" is not a valid glob`}}},
		{"empty glob", "policies:\n  - {name: a, streams: ['']}\n", []loc{{2, "policies[0].streams[0]", "empty glob"}}},
		{"glob with a slash", "policies:\n  - {name: a, streams: ['a/*']}\n", []loc{{2, "policies[0].streams[0]", "can never match"}}},
		{"bad unit", "policies:\n  - name: a\n    streams: [x]\n    warm: {max_age: 3 days}\n", []loc{{4, "policies[0].warm.max_age", "unknown unit"}}},
		{"negative size", "policies:\n  - name: a\n    streams: [x]\n    segment: {max_bytes: -1MiB}\n", []loc{{4, "policies[0].segment.max_bytes", "negative"}}},
		{"zero age", "policies:\n  - name: a\n    streams: [x]\n    cold: {max_age: 0}\n    warm: {max_age: 0s}\n", []loc{
			{4, "policies[0].cold.max_age", "must be positive (omit it to keep segments forever)"},
			{5, "policies[0].warm.max_age", "must be positive (omit it to keep segments warm forever)"}}},
		{"negative age", "policies:\n  - name: a\n    streams: [x]\n    hot: {max_age: -1h}\n", []loc{{4, "policies[0].hot.max_age", "must be positive"}}},
		{"policy segment over the hot budget", "policies:\n  - name: a\n    streams: [x]\n    segment: {max_bytes: 2GiB}\n", []loc{{4, "policies[0].segment.max_bytes", "exceeds hot.max_bytes (1GiB, the default)"}}},
		{"hot after warm", "policies:\n  - name: a\n    streams: [x]\n    hot: {max_age: 2h}\n    warm: {max_age: 1h}\n", []loc{{5, "policies[0].warm.max_age", "1h is below hot.max_age (2h)"}}},
		{"top-level hot after warm", "hot: {max_age: 2h}\npolicies:\n  - name: a\n    streams: [x]\n    warm: {max_age: 1h}\n", []loc{{5, "policies[0].warm.max_age", "1h is below hot.max_age (2h, the top-level setting)"}}},
		{"warm after cold", "policies:\n  - name: a\n    streams: [x]\n    warm: {max_age: 30d}\n    cold: {max_age: 7d}\n", []loc{{5, "policies[0].cold.max_age", "7d is below warm.max_age (30d)"}}},
		{"cold without warm", "policies:\n  - name: a\n    streams: [x]\n    cold: {max_age: 7d}\n", []loc{{4, "policies[0].cold.max_age", "needs warm.max_age"}}},
		{"cold.max_age without a cold store", "cold: {store: none}\npolicies:\n  - name: a\n    streams: [x]\n    warm: {max_age: 1d}\n    cold: {max_age: 7d}\n", []loc{{6, "policies[0].cold.max_age", "cold.store is none"}}},
		{"bad delete delay", "cold: {delete_delay: -1h}\n", []loc{{1, "cold.delete_delay", "must not be negative"}}},
		{"zero read timeout", "cold:\n  read_timeout: 0s\n", []loc{{2, "cold.read_timeout", "must be positive"}}},
		{"zero min transfer rate", "cold: {min_bytes_per_second: 0}\n", []loc{{1, "cold.min_bytes_per_second", "must be positive"}}},
		{"unknown migrator field", "migrator: {every: 1m}\n", []loc{{1, "migrator.every", "unknown field (want one of schedule, concurrency, max_bytes_per_second)"}}},
		{"bad cron spec", "migrator:\n  schedule: '*/5 * * *'\n", []loc{{2, "migrator.schedule", "has 4 fields; want 5"}}},
		{"bad cron descriptor", "migrator: {schedule: '@every 1d'}\n", []loc{{1, "migrator.schedule", `unknown unit "d"`}}},
		{"zero concurrency", "migrator: {concurrency: 0}\n", []loc{{1, "migrator.concurrency", "0 must be at least 1"}}},
		{"negative rate", "migrator: {max_bytes_per_second: -5}\n", []loc{{1, "migrator.max_bytes_per_second", "negative"}}},
		{"errors in two policies at once", "policies:\n  - {name: a, streams: ['[']}\n  - {name: b, streams: [y], warm: {max_age: 1m}}\n", []loc{
			{2, "policies[0].streams[0]", "not a valid glob"},
			{3, "policies[1].warm.max_age", "1m is below hot.max_age (10m, the top-level setting)"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("tierd.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", got)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is %T, want *ValidationError: %v", err, err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				fe := ve.Errors[i]
				if fe.File != "tierd.yaml" || fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
					t.Errorf("error %d = %+v\nwant line %d, field %q, message containing %q", i, fe, w.line, w.field, w.msg)
				}
			}
		})
	}
}

func TestPolicyErrorText(t *testing.T) {
	in := "policies:\n  - name: trading\n    streams: [IF*]\n    warm: {max_age: 24h}\n    cold: {max_age: 12h}\n"
	_, err := Parse("tierd.yaml", []byte(in))
	want := "tierd.yaml:5: policies[0].cold.max_age: 12h is below warm.max_age (1d): a segment is deleted only after it has left local disk"
	if err == nil || err.Error() != want {
		t.Fatalf("error text:\n%v\nwant:\n%s", err, want)
	}
}

func TestValidatePoliciesInCode(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(c *Config)
		fields []string
	}{
		{"zeros inherit", func(c *Config) { c.Policies = []Policy{{Name: "a", Streams: []string{"*"}}} }, nil},
		{"every rule", func(c *Config) {
			c.Cold.Store = StoreNone
			c.Migrator = MigratorConfig{Schedule: "@often", Concurrency: -1, MaxBytesPerSecond: -1}
			c.Policies = []Policy{
				{Name: "a", Streams: []string{"["}, HotMaxAge: -time.Second},
				{Name: "a", Segment: SegmentConfig{MaxBytes: -1}, WarmMaxAge: time.Hour, ColdMaxAge: Day},
			}
		}, []string{"migrator.schedule", "migrator.max_bytes_per_second", "migrator.concurrency",
			"policies[0].streams[0]", "policies[0].hot.max_age",
			"policies[1].name", "policies[1].streams", "policies[1].segment.max_bytes", "policies[1].cold.max_age"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			var fields []string
			var ve *ValidationError
			if err := c.Validate(); errors.As(err, &ve) {
				for _, fe := range ve.Errors {
					fields = append(fields, fe.Field)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fields, tc.fields) {
				t.Fatalf("errors on %v, want %v", fields, tc.fields)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []loc
	}{
		{"none", "policies:\n  - {name: a, streams: [x], warm: {max_age: 1d}}\n", nil},
		{"no cold store", "cold:\n  store: none\nwarm: {max_bytes: 10GiB}\npolicies:\n  - name: a\n    streams: [x]\n    warm: {max_age: 1d}\n", []loc{
			{2, "cold.store", "is none: the oldest segments are deleted whenever local disk holds more than warm.max_bytes (10GiB)"},
			{7, "policies[0].warm.max_age", "deletes segments at 1d: cold.store is none"}}},
		{"no cold store, budget at its default", "\ncold: {store: none}\n", []loc{{2, "cold.store", "warm.max_bytes (100GiB)"}}},
		{"shadowed policy", "policies:\n  - {name: all, streams: ['*']}\n  - {name: late, streams: [x]}\n", []loc{
			{3, "policies[1]", `policy "late" never applies: policies[0] ("all")`}}},
		{"same globs twice", "policies:\n  - {name: a, streams: [y, z]}\n  - {name: b, streams: [z]}\n  - {name: c, streams: [z, w]}\n  - {name: d, streams: [z, y]}\n", []loc{
			{3, "policies[1]", `policy "b" never applies: policies[0] ("a")`},
			{5, "policies[3]", `policy "d" never applies: policies[0] ("a")`}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, warns, err := Check("tierd.yaml", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != len(tc.want) {
				t.Fatalf("got %d warnings, want %d: %v", len(warns), len(tc.want), warns)
			}
			for i, w := range tc.want {
				fe := warns[i]
				if fe.File != "tierd.yaml" || fe.Line != w.line || fe.Field != w.field || !strings.Contains(fe.Msg, w.msg) {
					t.Errorf("warning %d = %+v\nwant line %d, field %q, message containing %q", i, fe, w.line, w.field, w.msg)
				}
			}
			// Config.Warnings finds the same, without positions.
			plain := c.Warnings()
			if len(plain) != len(warns) {
				t.Fatalf("Warnings() = %v, Check gave %v", plain, warns)
			}
			for _, fe := range plain {
				if fe.File != "" || fe.Line != 0 {
					t.Errorf("Warnings() has a position: %+v", fe)
				}
			}
		})
	}
	if _, _, err := Check("tierd.yaml", []byte("listen: x\n")); err == nil {
		t.Fatal("Check accepted a bad file")
	}
}

func TestCheckSchedule(t *testing.T) {
	good := []string{
		"@every 30s", "@every 1m30s", "@every 1s", "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually",
		"* * * * *", "*/5 * * * *", "0 3 * * *", "0,15,30,45 * * * *", "0 9-17 * * mon-fri", "0 0 1 jan,JUL *", "? ? ? ? ?",
		"5/10 * 1-31/2 * SUN", "0 0 * * 0-6", "CRON_TZ=UTC 0 3 * * *", "TZ=UTC @daily", "0,,5 * * * *",
	}
	for _, s := range good {
		if err := CheckSchedule(s); err != nil {
			t.Errorf("CheckSchedule(%q) = %v", s, err)
		}
	}
	bad := map[string]string{
		"":                       "is empty",
		"   ":                    "is empty",
		"@every":                 "not a descriptor",
		"@every 1d":              `unknown unit "d"`,
		"@every 500ms":           "at least 1s",
		"@every -5s":             "at least 1s",
		"@daily ":                "not a descriptor",
		"@sometimes":             "not a descriptor",
		"* * * *":                "has 4 fields",
		"* * * * * *":            "has 6 fields",
		"60 * * * *":             "minute field: 60 is above 59",
		"* 24 * * *":             "hour field: 24 is above 23",
		"* * 0 * *":              "day-of-month field: 0 is below 1",
		"* * * 13 *":             "month field: 13 is above 12",
		"* * * * 7":              "day-of-week field: 7 is above 6",
		"* * * foo *":            `"foo" is not a number`,
		"5-1 * * * *":            "runs backwards",
		"1-2-3 * * * *":          "too many hyphens",
		"*/0 * * * *":            "step",
		"*/5/2 * * * *":          "too many slashes",
		"-1 * * * *":             `"" is not a number`,
		"CRON_TZ=UTC":            "no schedule",
		"TZ=Nowhere/City @daily": "bad time zone",
		"TZ= @daily":             "bad time zone",
	}
	for s, msg := range bad {
		err := CheckSchedule(s)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("CheckSchedule(%q) = %v, want an error containing %q", s, err, msg)
		}
	}
}
