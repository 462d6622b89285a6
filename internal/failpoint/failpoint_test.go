package failpoint

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// disarmAll leaves no failpoint armed when the test ends.
func disarmAll(t *testing.T) {
	t.Cleanup(func() {
		for _, n := range Names {
			Disable(n)
		}
	})
}

func TestUnarmedInjectIsNil(t *testing.T) {
	disarmAll(t)
	for _, n := range append(Names, "not/a-failpoint", "") {
		for i := 0; i < 3; i++ {
			if err := Inject(n); err != nil {
				t.Fatalf("unarmed Inject(%q) = %v", n, err)
			}
		}
	}
}

func TestEnableRejects(t *testing.T) {
	disarmAll(t)
	for _, c := range []struct{ name, act, want string }{
		{"move/after-nothing", "error", "unknown name"},
		{"", "error", "unknown name"},
		{"MOVE/AFTER-WRITE", "error", "unknown name"},
		{MoveAfterWrite, "panic", "unknown action"},
		{MoveAfterWrite, "", "unknown action"},
		{MoveAfterWrite, "Error", "unknown action"},
		{MoveAfterWrite, "error@0", "bad hit number"},
		{MoveAfterWrite, "error@-1", "bad hit number"},
		{MoveAfterWrite, "error@x", "bad hit number"},
		{MoveAfterWrite, "crash@", "bad hit number"},
		{MoveAfterWrite, "error@1@2", "bad hit number"},
	} {
		err := Enable(c.name, c.act)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Enable(%q, %q) = %v, want an error saying %q", c.name, c.act, err, c.want)
		}
	}
	// Nothing was armed by the rejected calls.
	for _, n := range Names {
		if err := Inject(n); err != nil {
			t.Fatalf("a rejected Enable armed %s: %v", n, err)
		}
	}
}

func TestParse(t *testing.T) {
	disarmAll(t)
	for _, spec := range []string{"nope=error", MoveAfterWrite, MoveAfterWrite + "=boom", MoveAfterWrite + "=error," + DeleteAfterRemove + "=error@0"} {
		if err := Parse(spec); err == nil {
			t.Errorf("Parse(%q) accepted", spec)
		}
	}
	for _, n := range Names {
		Disable(n) // a partly accepted spec arms its good items; start clean
	}
	if err := Parse(" " + MoveAfterCommit + "=error , ," + DeleteAfterRemove + "=error@2,"); err != nil {
		t.Fatalf("Parse of a good spec: %v", err)
	}
	if err := Inject(MoveAfterCommit); !errors.Is(err, ErrInjected) {
		t.Fatalf("Inject(%s) after Parse = %v", MoveAfterCommit, err)
	}
	if err := Inject(DeleteAfterRemove); err != nil {
		t.Fatalf("first hit of %s=error@2 = %v", DeleteAfterRemove, err)
	}
	if err := Inject(DeleteAfterRemove); !errors.Is(err, ErrInjected) {
		t.Fatalf("second hit of %s=error@2 = %v", DeleteAfterRemove, err)
	}
	if err := Inject(MoveAfterWrite); err != nil {
		t.Fatalf("a failpoint the spec did not name fired: %v", err)
	}
	if err := Parse(""); err != nil {
		t.Fatalf("Parse of an empty spec: %v", err)
	}
}

func TestErrorEveryHit(t *testing.T) {
	disarmAll(t)
	if err := Enable(MoveAfterVerify, "error"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		err := Inject(MoveAfterVerify)
		if !errors.Is(err, ErrInjected) || !strings.Contains(err.Error(), MoveAfterVerify) {
			t.Fatalf("hit %d: %v, want ErrInjected naming %s", i+1, err, MoveAfterVerify)
		}
	}
	if err := Inject(MoveAfterWrite); err != nil {
		t.Fatalf("another failpoint fired: %v", err)
	}
}

func TestErrorOnNthHit(t *testing.T) {
	disarmAll(t)
	if err := Enable(MoveAfterCommit, "error@3"); err != nil {
		t.Fatal(err)
	}
	for hit := 1; hit <= 6; hit++ {
		err := Inject(MoveAfterCommit)
		if fired := errors.Is(err, ErrInjected); fired != (hit == 3) {
			t.Fatalf("hit %d of error@3: %v", hit, err)
		}
	}
	// Enabling again starts counting again.
	if err := Enable(MoveAfterCommit, "error@1"); err != nil {
		t.Fatal(err)
	}
	if err := Inject(MoveAfterCommit); !errors.Is(err, ErrInjected) {
		t.Fatalf("first hit after re-enabling with error@1: %v", err)
	}
	if err := Inject(MoveAfterCommit); err != nil {
		t.Fatalf("second hit of error@1: %v", err)
	}
}

func TestDisable(t *testing.T) {
	disarmAll(t)
	for _, n := range []string{MoveAfterRemove, DeleteAfterTombstone} {
		if err := Enable(n, "error"); err != nil {
			t.Fatal(err)
		}
	}
	Disable(MoveAfterRemove)
	if err := Inject(MoveAfterRemove); err != nil {
		t.Fatalf("disabled failpoint fired: %v", err)
	}
	if err := Inject(DeleteAfterTombstone); !errors.Is(err, ErrInjected) {
		t.Fatalf("disabling one failpoint disarmed another: %v", err)
	}
	Disable(DeleteAfterTombstone)
	Disable(DeleteAfterTombstone) // twice is fine
	Disable("not/a-failpoint")
	for _, n := range Names {
		if err := Inject(n); err != nil {
			t.Fatalf("%s fired with everything disabled: %v", n, err)
		}
	}
}

// helperEnv marks the child process of the crash tests.
const helperEnv = "TIERD_FAILPOINT_HELPER"

// TestHelperProcess is not a test: re-executed as a child with failpoints
// in its environment, it hits MoveAfterWrite twice, saying so on stdout
// after each hit it survives.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("not a test on its own: the child process the crash tests re-execute with " + helperEnv + "=1")
	}
	for i := 1; i <= 2; i++ {
		err := Inject(MoveAfterWrite)
		os.Stdout.WriteString("survived hit " + string(rune('0'+i)) + " err=" + errString(err) + "\n")
	}
	os.Exit(0)
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return "injected"
}

// runHelper re-executes the test binary as the helper with spec in
// TIERD_FAILPOINTS and returns its outcome.
func runHelper(t *testing.T, spec string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", EnvVar+"="+spec)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func wantKilled(t *testing.T, err error, stderr string) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child ended with %v, want it killed (stderr %q)", err, stderr)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v (status %v), want death by SIGKILL; stderr %q", err, ee.ProcessState, stderr)
	}
	if !strings.Contains(stderr, "failpoint "+MoveAfterWrite+": crashing") {
		t.Fatalf("child's stderr %q does not say which failpoint crashed it", stderr)
	}
}

func TestCrashKillsTheProcess(t *testing.T) {
	stdout, stderr, err := runHelper(t, MoveAfterWrite+"=crash")
	wantKilled(t, err, stderr)
	if strings.Contains(stdout, "survived") {
		t.Fatalf("child went on after the crash: %q", stdout)
	}
}

func TestCrashOnNthHit(t *testing.T) {
	stdout, stderr, err := runHelper(t, MoveAfterWrite+"=crash@2")
	wantKilled(t, err, stderr)
	if !strings.Contains(stdout, "survived hit 1 err=nil") || strings.Contains(stdout, "survived hit 2") {
		t.Fatalf("crash@2: child's stdout %q, want it to survive hit 1 only", stdout)
	}
}

func TestEnvErrorAction(t *testing.T) {
	stdout, stderr, err := runHelper(t, MoveAfterWrite+"=error@2")
	if err != nil {
		t.Fatalf("child: %v (stderr %q)", err, stderr)
	}
	if !strings.Contains(stdout, "survived hit 1 err=nil") || !strings.Contains(stdout, "survived hit 2 err=injected") {
		t.Fatalf("error@2 from the environment: child's stdout %q", stdout)
	}
}

func TestBadEnvSpecStopsTheProcess(t *testing.T) {
	stdout, stderr, err := runHelper(t, "move/after-nothing=crash")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("child with a bad %s: %v, want exit status 2", EnvVar, err)
	}
	if !strings.Contains(stderr, EnvVar) || !strings.Contains(stderr, "unknown name") {
		t.Fatalf("child's stderr %q does not explain the bad spec", stderr)
	}
	if strings.Contains(stdout, "survived") {
		t.Fatalf("child ran with a bad spec: %q", stdout)
	}
}
