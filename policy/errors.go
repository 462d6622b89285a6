package policy

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every *ValidationError, so callers that only need
// to know "the configuration is wrong" can use errors.Is.
var ErrInvalid = errors.New("policy: invalid configuration")

// FieldError is one problem in a configuration, located so that an operator
// can go straight to it. Line and Column are 1-based; 0 means unknown (a
// Config built in code has no lines). Field is the dotted path of the
// setting ("wal.sync"), empty for problems of the file as a whole (YAML
// syntax).
type FieldError struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

// Error renders "file:line: field: msg", leaving out the parts that are
// unknown.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationError holds every problem found in a configuration, in file
// order, so that one run shows them all rather than one per edit.
type ValidationError struct {
	Errors []FieldError
}

// Error lists the problems one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalid }
