package policy

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tierd/tierd/tiers"
)

var planNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// planConfig has a trading policy with every age set, a logs policy that
// keeps cold forever, and the default for everything else (hot 10m).
func planConfig() Config {
	c := Default()
	c.Policies = []Policy{
		{Name: "trading", Streams: []string{"IF*", "IC*"}, HotMaxAge: time.Hour, WarmMaxAge: 24 * time.Hour, ColdMaxAge: 365 * Day},
		{Name: "logs", Streams: []string{"log*"}, WarmMaxAge: 7 * Day},
	}
	return c
}

// seg is a segment of bytes bytes sealed ago before planNow, held in ps.
func seg(stream string, base uint64, bytes int64, ago time.Duration, ps ...tiers.Placement) Segment {
	return Segment{SegmentMeta: tiers.SegmentMeta{Stream: stream, Base: base, Last: base + 9, Count: 10, Bytes: bytes,
		SealedAt: planNow.Add(-ago), Placements: tiers.Of(ps...)}}
}

func tombstoned(s Segment, ago time.Duration) Segment {
	s.Tombstoned = planNow.Add(-ago)
	return s
}

func inFlight(s Segment) Segment {
	s.InFlight = true
	return s
}

// want is one expected action; reason is a substring.
type want struct {
	kind   ActionKind
	stream string
	base   uint64
	reason string
}

const (
	hot  = tiers.Hot
	warm = tiers.Warm
	cld  = tiers.Cold
)

func TestPlan(t *testing.T) {
	noCold := func(c *Config) { c.Cold.Store = StoreNone; c.Policies[0].ColdMaxAge = 0 }
	cases := []struct {
		name string
		cfg  func(c *Config)
		segs []Segment
		want []want
	}{
		{"young segment stays", nil, []Segment{seg("IF1", 0, 10, 30*time.Minute, hot, warm)}, nil},
		// Memory is the hot tier's alone: the plan never evicts.
		{"no eviction at hot.max_age", nil, []Segment{seg("IF1", 0, 10, 2*time.Hour, hot, warm)}, nil},
		{"no eviction of a segment with only a cold copy", nil, []Segment{seg("IF1", 0, 10, 2*time.Hour, hot, cld)}, nil},
		{"upload at warm.max_age", nil, []Segment{seg("IC9", 7, 10, 25*time.Hour, warm)},
			[]want{{Upload, "IC9", 7, "age 1d1h >= warm.max_age 1d (policy trading)"}}},
		{"drop warm once cold is committed", nil, []Segment{seg("IF1", 0, 10, 25*time.Hour, warm, cld)},
			[]want{{DropWarm, "IF1", 0, "cold copy committed"}}},
		{"a resident segment is uploaded, not evicted", nil, []Segment{seg("IF1", 0, 10, 25*time.Hour, hot, warm)},
			[]want{{Upload, "IF1", 0, "warm.max_age"}}},
		{"cold segment kept until cold.max_age", nil, []Segment{seg("IF1", 0, 10, 364*Day, cld)}, nil},
		{"tombstone at cold.max_age", nil, []Segment{seg("IF1", 0, 10, 366*Day, cld)},
			[]want{{Tombstone, "IF1", 0, "age 366d >= cold.max_age 365d (policy trading)"}}},
		{"tombstone replaces every other move", nil, []Segment{seg("IF1", 0, 10, 366*Day, hot, warm)},
			[]want{{Tombstone, "IF1", 0, "cold.max_age"}}},
		{"retention goes oldest first: a newer segment sealed earlier waits", nil, []Segment{
			seg("IF1", 0, 10, 364*Day, cld),
			seg("IF1", 10, 10, 366*Day, cld), // the seal clock stepped back
		}, nil},
		{"retention goes oldest first: both due", nil, []Segment{
			seg("IF1", 0, 10, 367*Day, cld),
			seg("IF1", 10, 10, 366*Day, cld),
		}, []want{{Tombstone, "IF1", 0, "cold.max_age"}, {Tombstone, "IF1", 10, "cold.max_age"}}},
		{"retention goes oldest first: a tombstoned segment below does not hold it back", nil, []Segment{
			tombstoned(seg("IF1", 0, 10, 300*Day, cld), time.Minute),
			seg("IF1", 10, 10, 366*Day, cld),
		}, []want{{Tombstone, "IF1", 10, "cold.max_age"}}},
		{"no cold store: delete-warm goes oldest first", func(c *Config) { c.Cold.Store = StoreNone; c.Policies[0].ColdMaxAge = 0 }, []Segment{
			seg("IF1", 0, 10, 23*time.Hour, warm),
			seg("IF1", 10, 10, 25*time.Hour, warm),
		}, nil},
		{"tombstoned waits for delete_delay", nil, []Segment{tombstoned(seg("IF1", 0, 10, 400*Day, cld), 59*time.Minute)}, nil},
		{"delete cold when delete_delay has passed", nil, []Segment{tombstoned(seg("IF1", 0, 10, 400*Day, cld), time.Hour)},
			[]want{{DeleteCold, "IF1", 0, "tombstoned 1h ago, cold.delete_delay 1h"}}},
		{"delete cold later", nil, []Segment{tombstoned(seg("IF1", 0, 10, 400*Day, cld), 3*time.Hour)},
			[]want{{DeleteCold, "IF1", 0, "tombstoned 3h ago"}}},
		{"zero delete_delay deletes at once", func(c *Config) { c.Cold.DeleteDelay = 0 },
			[]Segment{tombstoned(seg("IF1", 0, 10, 400*Day, cld), 0)}, []want{{DeleteCold, "IF1", 0, "tombstoned"}}},
		{"in-flight segments are skipped", nil, []Segment{
			inFlight(seg("IF1", 0, 10, 25*time.Hour, hot, warm)),
			inFlight(tombstoned(seg("IF1", 10, 10, 400*Day, cld), 2*time.Hour)),
			inFlight(seg("IF1", 20, 10, 400*Day, cld)),
		}, nil},
		{"default policy keeps warm forever", nil, []Segment{seg("other", 0, 10, 1000*Day, warm)}, nil},
		{"omitted cold.max_age keeps cold forever", nil, []Segment{seg("logs", 0, 10, 10*Year, cld)}, nil},
		{"no cold store: warm.max_age deletes", noCold, []Segment{seg("IF1", 0, 10, 25*time.Hour, warm)},
			[]want{{DeleteWarm, "IF1", 0, "warm.max_age 1d (policy trading), no cold store"}}},
		{"no cold store: a resident segment is deleted", noCold, []Segment{seg("IF1", 0, 10, 25*time.Hour, hot, warm)},
			[]want{{DeleteWarm, "IF1", 0, "warm.max_age"}}},
		{"no cold store: a stale cold placement is not dropped to", noCold, []Segment{seg("IF1", 0, 10, 25*time.Hour, warm, cld)},
			[]want{{DeleteWarm, "IF1", 0, "no cold store"}}},
		// The memory budget is the hot tier's own: the plan evicts by age only.
		{"no eviction over hot.max_bytes", func(c *Config) { c.Hot.MaxBytes = 50 }, []Segment{
			seg("other", 0, 40, 3*time.Minute, hot, warm),
			seg("b", 0, 40, 1*time.Minute, hot, warm),
		}, nil},
		{"over hot.max_bytes and past hot.max_age", func(c *Config) { c.Hot.MaxBytes = 100 }, []Segment{
			seg("other", 0, 40, 20*time.Minute, hot, warm),
			seg("other", 10, 40, 2*time.Minute, hot, warm),
			seg("other", 20, 40, 1*time.Minute, hot, warm),
		}, nil},
		{"warm budget uploads oldest first", func(c *Config) { c.Warm.MaxBytes = 100 }, []Segment{
			seg("other", 0, 40, 3*time.Hour, warm),
			seg("other", 10, 40, 2*time.Hour, warm),
			seg("other", 20, 40, 1*time.Hour, warm),
		}, []want{{Upload, "other", 0, "warm.max_bytes 100B exceeded (120B on local disk), oldest first"}}},
		{"warm budget drops warm when cold is committed", func(c *Config) { c.Warm.MaxBytes = 50 }, []Segment{
			seg("other", 0, 40, 3*time.Hour, warm, cld),
			seg("other", 10, 40, 2*time.Hour, warm),
			seg("other", 20, 40, 1*time.Hour, warm),
		}, []want{{DropWarm, "other", 0, "warm.max_bytes"}, {Upload, "other", 10, "warm.max_bytes"}}},
		{"warm budget without cold store deletes", func(c *Config) { noCold(c); c.Warm.MaxBytes = 100 }, []Segment{
			seg("other", 0, 40, 3*time.Hour, warm),
			seg("other", 10, 40, 2*time.Hour, warm),
			seg("other", 20, 40, 1*time.Hour, warm),
		}, []want{{DeleteWarm, "other", 0, "warm.max_bytes 100B exceeded"}}},
		{"warm budget skips in-flight and tombstoned", func(c *Config) { c.Warm.MaxBytes = 100 }, []Segment{
			inFlight(seg("other", 0, 40, 4*time.Hour, warm)),
			tombstoned(seg("other", 10, 40, 3*time.Hour, warm), time.Minute),
			seg("other", 20, 40, 2*time.Hour, warm),
			seg("other", 30, 40, 1*time.Hour, warm),
		}, []want{{Upload, "other", 20, "warm.max_bytes"}, {Upload, "other", 30, "warm.max_bytes"}}},
		{"warm budget counts age moves as done", func(c *Config) { c.Warm.MaxBytes = 100 }, []Segment{
			seg("IF1", 0, 40, 30*time.Hour, warm),
			seg("other", 0, 40, 2*time.Hour, warm),
			seg("other", 10, 40, 1*time.Hour, warm),
		}, []want{{Upload, "IF1", 0, "warm.max_age"}}},
		{"under budget nothing moves", func(c *Config) { c.Hot.MaxBytes, c.Warm.MaxBytes = 120, 120 }, []Segment{
			seg("other", 0, 40, 3*time.Minute, hot, warm),
			seg("other", 10, 40, 2*time.Minute, hot, warm),
			seg("other", 20, 40, 1*time.Minute, hot, warm),
		}, nil},
		{"sorted by stream, base and kind", nil, []Segment{
			seg("IF2", 5, 10, 25*time.Hour, hot, warm),
			seg("IC1", 9, 10, 25*time.Hour, warm, cld),
			seg("IF2", 0, 10, 2*time.Hour, hot, warm),
			seg("IC1", 3, 10, 400*Day, cld),
		}, []want{
			{Tombstone, "IC1", 3, ""}, {DropWarm, "IC1", 9, ""}, {Upload, "IF2", 5, ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := planConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			got := Plan(planNow, tc.segs, cfg)
			if len(got) != len(tc.want) {
				t.Fatalf("Plan = %d actions, want %d:\n%s", len(got), len(tc.want), actionList(got))
			}
			for i, w := range tc.want {
				a := got[i]
				if a.Kind != w.kind || a.Stream != w.stream || a.Base != w.base || !strings.Contains(a.Reason, w.reason) {
					t.Errorf("action %d = %v\nwant %v %s@%d with reason containing %q", i, a, w.kind, w.stream, w.base, w.reason)
				}
				if a.Due.After(planNow) {
					t.Errorf("action %d is due in the future: %v", i, a.Due)
				}
			}
		})
	}
}

func actionList(as []Action) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "  %v\n", a)
	}
	return b.String()
}

func TestPlanDue(t *testing.T) {
	cfg := planConfig()
	s := seg("IF1", 0, 10, 25*time.Hour, hot, warm)
	got := Plan(planNow, []Segment{s}, cfg)
	if len(got) != 1 || !got[0].Due.Equal(s.SealedAt.Add(24*time.Hour)) {
		t.Fatalf("due times: %+v", got)
	}
	ts := tombstoned(seg("IF1", 0, 10, 400*Day, cld), 2*time.Hour)
	got = Plan(planNow, []Segment{ts}, cfg)
	if len(got) != 1 || !got[0].Due.Equal(ts.Tombstoned.Add(time.Hour)) || got[0].Bytes != 10 || got[0].Policy != "trading" {
		t.Fatalf("delete-cold: %+v", got)
	}
	cfg.Warm.MaxBytes = 5
	got = Plan(planNow, []Segment{seg("other", 0, 10, time.Minute, warm)}, cfg)
	if len(got) != 1 || !got[0].Due.Equal(planNow) {
		t.Fatalf("budget action is not due now: %+v", got)
	}
}

func TestNext(t *testing.T) {
	cases := []struct {
		name   string
		cfg    func(c *Config)
		seg    Segment
		kind   ActionKind
		due    time.Duration // after planNow; negative = in the past
		reason string
	}{
		{"hot segment: eviction ahead", nil, seg("IF1", 0, 10, 20*time.Minute, hot, warm), EvictHot, 40 * time.Minute,
			"at age 1h: hot.max_age 1h (policy trading); age now 20m; by the hot tier, sooner while memory is over hot.max_bytes 1GiB"},
		{"hot segment with only a cold copy", nil, seg("IF1", 0, 10, 20*time.Minute, hot, cld), EvictHot, 40 * time.Minute, "hot.max_age 1h"},
		{"policy without hot.max_age inherits it", nil, seg("logs", 0, 10, 5*time.Minute, hot, warm), EvictHot, 5 * time.Minute, "hot.max_age 10m (policy logs)"},
		{"warm segment: upload ahead", nil, seg("IF1", 0, 10, 2*time.Hour, warm), Upload, 22 * time.Hour, "warm.max_age"},
		{"due now", nil, seg("IF1", 0, 10, 2*time.Hour, hot, warm), EvictHot, -time.Hour, "age 2h >= hot.max_age 1h (policy trading); by the hot tier at its next pass"},
		{"first by kind when several are due", nil, seg("IF1", 0, 10, 30*time.Hour, hot, warm), EvictHot, -29 * time.Hour, ""},
		{"cold segment: tombstone ahead", nil, seg("IF1", 0, 10, 30*Day, cld), Tombstone, 335 * Day, "cold.max_age 365d"},
		{"tombstone due beats earlier moves", nil, seg("IF1", 0, 10, 366*Day, hot, warm), Tombstone, -Day, ""},
		{"tombstoned: delete ahead", nil, tombstoned(seg("IF1", 0, 10, 400*Day, cld), 20*time.Minute), DeleteCold, 40 * time.Minute, "cold.delete_delay 1h"},
		{"no cold store: delete warm ahead", func(c *Config) { c.Cold.Store = StoreNone; c.Policies[0].ColdMaxAge = 0 },
			seg("IF1", 0, 10, 2*time.Hour, warm), DeleteWarm, 22 * time.Hour, "no cold store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := planConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			a, ok := Next(planNow, tc.seg, cfg)
			if !ok || a.Kind != tc.kind || !a.Due.Equal(planNow.Add(tc.due)) || !strings.Contains(a.Reason, tc.reason) {
				t.Fatalf("Next = %v due %v, %v; want %v due %v", a, a.Due, ok, tc.kind, planNow.Add(tc.due))
			}
		})
	}
	for name, s := range map[string]Segment{
		"default policy, warm forever": seg("other", 0, 10, 1000*Day, warm),
		"cold forever":                 seg("logs", 0, 10, 1000*Day, cld),
		"in flight":                    inFlight(seg("IF1", 0, 10, 2*time.Hour, hot, warm)),
	} {
		if a, ok := Next(planNow, s, planConfig()); ok {
			t.Errorf("%s: Next = %v, want nothing", name, a)
		}
	}
}

func TestPolicyFor(t *testing.T) {
	c := Default()
	c.Segment = SegmentConfig{MaxBytes: 32 * MiB, MaxAge: time.Minute}
	c.Policies = []Policy{
		{Name: "one", Streams: []string{"IF2406"}, WarmMaxAge: time.Hour},
		{Name: "futures", Streams: []string{"IF*", "IC*"}, Segment: SegmentConfig{MaxBytes: MiB}, HotMaxAge: 5 * time.Minute, WarmMaxAge: Day},
		{Name: "digits", Streams: []string{"[0-9]*"}, Segment: SegmentConfig{MaxAge: time.Second}},
	}
	cases := []struct {
		stream string
		want   Policy
	}{
		{"IF2406", Policy{Name: "one", Streams: []string{"IF2406"}, Segment: c.Segment, HotMaxAge: 10 * time.Minute, WarmMaxAge: time.Hour}},
		{"IF2407", Policy{Name: "futures", Streams: []string{"IF*", "IC*"}, Segment: SegmentConfig{MaxBytes: MiB, MaxAge: time.Minute}, HotMaxAge: 5 * time.Minute, WarmMaxAge: Day}},
		{"IC1", Policy{Name: "futures", Streams: []string{"IF*", "IC*"}, Segment: SegmentConfig{MaxBytes: MiB, MaxAge: time.Minute}, HotMaxAge: 5 * time.Minute, WarmMaxAge: Day}},
		{"7x", Policy{Name: "digits", Streams: []string{"[0-9]*"}, Segment: SegmentConfig{MaxBytes: 32 * MiB, MaxAge: time.Second}, HotMaxAge: 10 * time.Minute}},
		{"trades", Policy{Name: DefaultPolicyName, Streams: []string{"*"}, Segment: c.Segment, HotMaxAge: 10 * time.Minute}},
		{"if2406", Policy{Name: DefaultPolicyName, Streams: []string{"*"}, Segment: c.Segment, HotMaxAge: 10 * time.Minute}},
	}
	for _, tc := range cases {
		if got := c.PolicyFor(tc.stream); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PolicyFor(%q) = %+v\nwant %+v", tc.stream, got, tc.want)
		}
	}
}

func TestActionKindText(t *testing.T) {
	for k := EvictHot; k <= DeleteCold; k++ {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		var back ActionKind
		if err := json.Unmarshal(b, &back); err != nil || back != k {
			t.Errorf("%v round-trips through %s to %v, %v", k, b, back, err)
		}
	}
	if s := ActionKind(0).String(); s != "action(0)" {
		t.Errorf("zero kind = %q", s)
	}
	if _, err := ParseActionKind("move"); err == nil {
		t.Error("ParseActionKind accepted move")
	}
	a := Action{Kind: Upload, Stream: "IF1", Base: 42, Bytes: 16 * MiB, Reason: "age 25h >= warm.max_age 24h (policy trading)"}
	if got, want := a.String(), "upload IF1@42 (16MiB): age 25h >= warm.max_age 24h (policy trading)"; got != want {
		t.Errorf("Action.String = %q, want %q", got, want)
	}
}

// FuzzPlan plans random segments under a few configurations and checks
// the invariants the migrator relies on.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("\x01\x00\x10\x00\x00\x00\x07\x00\x02\x03\x00\x20\x00\x10\x00\x05\x01\x04"), uint8(1))
	f.Add([]byte(strings.Repeat("\x05\x07\x00\x13\x02\x00\x0e\xff", 12)), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		cfg := planConfig()
		if mode&1 != 0 {
			cfg.Cold.Store = StoreNone
			cfg.Policies[0].ColdMaxAge = 0
		}
		if mode&2 != 0 {
			cfg.Hot.MaxBytes, cfg.Warm.MaxBytes = 300, 500
		}
		if mode&4 != 0 {
			cfg.Cold.DeleteDelay = 0
		}
		streams := []string{"IF1", "IC2", "logs", "other"}
		var segs []Segment
		const rec = 8
		for i := 0; i+rec <= len(data) && len(segs) < 64; i += rec {
			b := data[i : i+rec]
			s := Segment{SegmentMeta: tiers.SegmentMeta{
				Stream:     streams[int(b[0])%len(streams)],
				Base:       uint64(i),
				Bytes:      int64(b[1]) * 4,
				SealedAt:   planNow.Add(-time.Duration(binary.LittleEndian.Uint16(b[2:4])) * 7 * time.Hour),
				Placements: tiers.Placements(b[4]) & tiers.Of(hot, warm, cld),
			}}
			if b[5]&1 != 0 {
				s.Tombstoned = planNow.Add(-time.Duration(b[6]) * time.Minute)
			}
			s.InFlight = b[5]&2 != 0
			segs = append(segs, s)
		}
		got := Plan(planNow, segs, cfg)
		bySeg := map[uint64]*Segment{}
		for i := range segs {
			bySeg[segs[i].Base] = &segs[i]
		}
		seen := map[string]bool{}
		for i, a := range got {
			s := bySeg[a.Base]
			if s == nil || s.Stream != a.Stream {
				t.Fatalf("action for an unknown segment: %v", a)
			}
			key := fmt.Sprintf("%d/%v", a.Base, a.Kind)
			if seen[key] {
				t.Fatalf("two %v actions for one segment:\n%s", a.Kind, actionList(got))
			}
			seen[key] = true
			if i > 0 {
				p := got[i-1]
				if p.Stream > a.Stream || p.Stream == a.Stream && (p.Base > a.Base || p.Base == a.Base && p.Kind >= a.Kind) {
					t.Fatalf("not sorted:\n%s", actionList(got))
				}
			}
			if s.InFlight {
				t.Fatalf("action for an in-flight segment: %v", a)
			}
			if a.Due.After(planNow) || a.Reason == "" {
				t.Fatalf("action not due or without reason: %+v", a)
			}
			pl := s.Placements
			switch a.Kind {
			case EvictHot:
				t.Fatalf("plan evicts %v: memory is the hot tier's alone", a)
			case Upload:
				if !pl.Has(warm) || pl.Has(cld) || !cfg.HasColdStore() {
					t.Fatalf("uploads %v (cold store %v)", pl, cfg.HasColdStore())
				}
			case DropWarm:
				if !pl.Has(warm) || !pl.Has(cld) || !cfg.HasColdStore() {
					t.Fatalf("drops warm of %v: no committed cold copy", pl)
				}
			case DeleteWarm:
				if !pl.Has(warm) || cfg.HasColdStore() {
					t.Fatalf("deletes warm of %v with a cold store", pl)
				}
			case Tombstone:
				if !s.Tombstoned.IsZero() || !cfg.HasColdStore() {
					t.Fatalf("tombstones %+v again", s)
				}
			case DeleteCold:
				if s.Tombstoned.IsZero() || planNow.Sub(s.Tombstoned) < cfg.Cold.DeleteDelay {
					t.Fatalf("deletes %+v before tombstone + delay", s)
				}
			default:
				t.Fatalf("unknown action %v", a)
			}
			if !s.Tombstoned.IsZero() && a.Kind != DeleteCold {
				t.Fatalf("moves a tombstoned segment: %v", a)
			}
		}
		rev := slices.Clone(segs)
		slices.Reverse(rev)
		if again := Plan(planNow, rev, cfg); !reflect.DeepEqual(again, got) {
			t.Fatalf("plan depends on input order:\n%s\nvs\n%s", actionList(got), actionList(again))
		}
	})
}
