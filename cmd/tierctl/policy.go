package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tierd/tierd/cold/colproj"
	"github.com/tierd/tierd/policy"
)

func newPolicyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "policy",
		Short:   "Work with tierd configuration files offline",
		Example: `  tierctl policy check /etc/tierd/tierd.yaml`,
		Args:    noArgs,
	}
	cmd.AddCommand(newPolicyCheckCmd(a))
	return cmd
}

func newPolicyCheckCmd(a *app) *cobra.Command {
	var streams []string
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file without a server",
		Long: `check parses FILE as tierd would at start-up and reports every problem at
once, each as FILE:LINE: FIELD: MESSAGE, then exits 1; a valid file exits 0.
Warnings (valid settings that delete data or never apply) go to stderr and
do not change the exit code. On success it lists the policies, and with
--stream which policy each named stream gets.`,
		Example: `  tierctl policy check /etc/tierd/tierd.yaml
  tierctl policy check tierd.yaml --stream IF2406 --stream audit.web
  tierctl policy check tierd.yaml -o json`,
		Args: exactArgs("FILE"),
		RunE: a.verb(func(cmd *cobra.Command, args []string) error {
			return a.policyCheck(args[0], streams)
		}),
	}
	cmd.Flags().StringArrayVar(&streams, "stream", nil, "show the policy that applies to this stream (repeatable)")
	return cmd
}

// checkReport is policy check's JSON output.
type checkReport struct {
	File     string            `json:"file"`
	Valid    bool              `json:"valid"`
	Errors   []checkProblem    `json:"errors"`
	Warnings []checkProblem    `json:"warnings"`
	Policies []checkPolicy     `json:"policies"`
	Streams  map[string]string `json:"streams,omitempty"`
}

// checkProblem is one error or warning, located.
type checkProblem struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// checkPolicy is one policy with inherited settings filled in; empty ages
// are "forever".
type checkPolicy struct {
	Name            string   `json:"name"`
	Streams         []string `json:"streams"`
	SegmentMaxBytes int64    `json:"segment_max_bytes"`
	SegmentMaxAge   string   `json:"segment_max_age"`
	HotMaxAge       string   `json:"hot_max_age"`
	WarmMaxAge      string   `json:"warm_max_age,omitempty"`
	ColdMaxAge      string   `json:"cold_max_age,omitempty"`
	// Columns are the typed columns of the policy's cold files.
	Columns []colproj.Column `json:"columns,omitempty"`
}

func (a *app) policyCheck(file string, streams []string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	cfg, warns, err := policy.Check(file, data)
	var ve *policy.ValidationError
	if err != nil && !errors.As(err, &ve) {
		return err
	}
	rep := checkReport{File: file, Valid: err == nil, Errors: []checkProblem{}, Warnings: problems(warns), Policies: []checkPolicy{}}
	if ve != nil {
		rep.Errors = problems(ve.Errors)
	}
	if rep.Valid {
		for _, p := range cfg.Policies {
			rep.Policies = append(rep.Policies, describe(cfg.Resolve(p)))
		}
		rep.Policies = append(rep.Policies, describe(cfg.DefaultPolicy()))
		for _, s := range streams {
			if rep.Streams == nil {
				rep.Streams = map[string]string{}
			}
			rep.Streams[s] = cfg.PolicyFor(s).Name
		}
	}
	if a.output == "json" {
		if err := writeJSON(a.stdout, rep); err != nil {
			return err
		}
	} else {
		printProblems(a.stderr, ve, warns)
		if rep.Valid {
			if err := a.printPolicies(rep, streams); err != nil {
				return err
			}
		}
	}
	if !rep.Valid {
		n := len(rep.Errors)
		return fmt.Errorf("%s is invalid (%d %s)", file, n, plural(n, "problem", "problems"))
	}
	return nil
}

func problems(fes []policy.FieldError) []checkProblem {
	out := []checkProblem{}
	for _, fe := range fes {
		out = append(out, checkProblem{Line: fe.Line, Column: fe.Column, Field: fe.Field, Message: fe.Msg})
	}
	return out
}

// printProblems writes errors and warnings one per line, as compilers do,
// so that editors can jump to them.
func printProblems(w io.Writer, ve *policy.ValidationError, warns []policy.FieldError) {
	if ve != nil {
		for _, fe := range ve.Errors {
			fmt.Fprintln(w, fe.Error())
		}
	}
	for _, fe := range warns {
		msg := fe.Msg
		if fe.Field != "" {
			msg = fe.Field + ": " + msg
		}
		loc := fe.File
		if fe.Line > 0 {
			loc = fmt.Sprintf("%s:%d", fe.File, fe.Line)
		}
		fmt.Fprintf(w, "%s: warning: %s\n", loc, msg)
	}
}

func (a *app) printPolicies(rep checkReport, streams []string) error {
	fmt.Fprintf(a.stdout, "%s: OK\n\n", rep.File)
	t := newTable(a.stdout, "POLICY", "STREAMS", "SEGMENT", "HOT", "WARM", "COLD")
	for _, p := range rep.Policies {
		t.row(p.Name, strings.Join(p.Streams, ","), policy.FormatSize(p.SegmentMaxBytes)+"/"+p.SegmentMaxAge,
			p.HotMaxAge, orForever(p.WarmMaxAge), orForever(p.ColdMaxAge))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if err := a.printColumns(rep); err != nil {
		return err
	}
	if len(streams) == 0 {
		return nil
	}
	fmt.Fprintln(a.stdout)
	t = newTable(a.stdout, "STREAM", "POLICY")
	for _, s := range streams {
		t.row(s, rep.Streams[s])
	}
	return t.flush()
}

// printColumns lists the policies' typed columns, if any has some.
func (a *app) printColumns(rep checkReport) error {
	var t *table
	for _, p := range rep.Policies {
		for _, c := range p.Columns {
			if t == nil {
				fmt.Fprintln(a.stdout)
				t = newTable(a.stdout, "POLICY", "COLUMN", "PATH", "TYPE")
			}
			typ := string(c.Type)
			if c.Type == colproj.Decimal {
				typ = fmt.Sprintf("decimal(%d,%d)", c.Precision, c.Scale)
			}
			t.row(p.Name, c.Name, c.Path, typ)
		}
	}
	if t == nil {
		return nil
	}
	return t.flush()
}

// describe renders a resolved policy; the default policy's streams are
// the ones no other policy matches.
func describe(p policy.Policy) checkPolicy {
	streams := p.Streams
	if p.Name == policy.DefaultPolicyName && len(streams) == 1 && streams[0] == "*" {
		streams = []string{"(unmatched)"}
	}
	return checkPolicy{Name: p.Name, Streams: streams, SegmentMaxBytes: p.Segment.MaxBytes, SegmentMaxAge: policy.FormatDuration(p.Segment.MaxAge),
		HotMaxAge: policy.FormatDuration(p.HotMaxAge), WarmMaxAge: ageOrEmpty(p.WarmMaxAge), ColdMaxAge: ageOrEmpty(p.ColdMaxAge),
		Columns: p.Columns}
}

// ageOrEmpty renders a max_age, empty for 0 (forever).
func ageOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return policy.FormatDuration(d)
}

func orForever(s string) string {
	if s == "" {
		return "forever"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
