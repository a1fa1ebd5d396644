package ui

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"github.com/gatehouse-proxy/gatehouse/internal/acme"
)

// scrollDown scrolls the wizard as far down as a wheel would.
func scrollDown(g *App) {
	g.wizard.scroll.Scrolled(&fyne.ScrollEvent{Scrolled: fyne.NewDelta(0, -5000)})
}

// TestWizardStepsStartAtTheTop: the steps share one scroll, and each step
// starts at its top whether reached with Next or Back, however far down
// the previous one was scrolled.
func TestWizardStepsStartAtTheTop(t *testing.T) {
	g := newTestApp(t, test.NewTempApp(t), testOptions(t.TempDir()))
	holdUI(t)
	g.win.Resize(fyne.NewSize(700, 260)) // short, so every step scrolls
	for _, move := range []string{"next", "next", "next", "back", "back", "back"} {
		from := g.wizard.d.Step
		scrollDown(g)
		if g.wizard.scroll.Offset.Y <= 0 {
			t.Fatalf("step %d does not scroll in a short window (offset %v): the test proves nothing", from+1, g.wizard.scroll.Offset)
		}
		if move == "next" {
			test.Tap(g.wizard.next)
		} else {
			test.Tap(g.wizard.back)
		}
		if g.wizard.d.Step == from {
			t.Fatalf("%s from step %d did not move (Next disabled: %v, errors %v)", move, from+1, g.wizard.next.Disabled(), g.wizard.errs)
		}
		if y := g.wizard.scroll.Offset.Y; y != 0 {
			t.Errorf("step %d (after %s) opens scrolled down by %v, want its top", g.wizard.d.Step+1, move, y)
		}
	}
}

// TestAdvancedOpensIntoView: opening step 3's advanced settings, which
// sit at its end, scrolls them into view.
func TestAdvancedOpensIntoView(t *testing.T) {
	g := newTestApp(t, test.NewTempApp(t), testOptions(t.TempDir()))
	holdUI(t)
	_, _, cert, _ := wizardSteps(g)
	test.Tap(g.wizard.next)
	test.Tap(g.wizard.next)
	g.win.Resize(fyne.NewSize(960, 500))
	if cert.advancedBox.Visible() || g.wizard.scroll.Offset.Y != 0 {
		t.Fatalf("step 3 opens with the advanced settings shown (%v) or scrolled (%v)", cert.advancedBox.Visible(), g.wizard.scroll.Offset)
	}
	test.Tap(cert.advanced)
	if !cert.advancedBox.Visible() {
		t.Fatal("Advanced did not open")
	}
	s := g.wizard.scroll
	bottom := s.Content.MinSize().Height - s.Size().Height
	if bottom <= 0 || s.Offset.Y < bottom-1 {
		t.Errorf("after opening Advanced the step is scrolled to %v of %v: its settings are below the fold", s.Offset.Y, bottom)
	}
	test.Tap(cert.advanced)
	if cert.advancedBox.Visible() {
		t.Error("Advanced did not close")
	}
}

// TestWizardErrorKeepsNextDisabled: a red mark (a failed check, not only a
// field error) keeps Next disabled, and its words name the wizard's
// choices, not flags. Let's Encrypt for gatehouse.localhost, then an HTTPS
// port another program holds.
func TestWizardErrorKeepsNextDisabled(t *testing.T) {
	g := newTestApp(t, test.NewTempApp(t), testOptions(t.TempDir()))
	host, _, cert, _ := wizardSteps(g)
	awaitStepChecks(t, g)
	onUI(func() {
		// The default name is the try-out choice, not a mistake.
		if got := rowText(host.checks); !strings.Contains(got, "the name for trying Gatehouse out") || strings.Contains(got, "only your own network") {
			t.Errorf("step 1 about %s: %q", defaultHostname, got)
		}
		if len(host.blockers()) != 0 || g.wizard.next.Disabled() {
			t.Errorf("the default hostname blocks Next: %v", host.blockers())
		}
		test.Tap(g.wizard.next)
		test.Tap(g.wizard.next)
	})
	awaitStepChecks(t, g)
	onUI(func() {
		if g.wizard.next.Disabled() {
			t.Fatalf("step 3 with the local CA: Next disabled (%v, %v)", g.wizard.errs, cert.blockers())
		}
		cert.choice.SetSelected(certChoices[1].label) // Let's Encrypt
		got := rowText(cert.name)
		for _, want := range []string{"always means this computer", "choose the local certificate authority"} {
			if !strings.Contains(got, want) {
				t.Errorf("Let's Encrypt for %s says %q, want %q", defaultHostname, got, want)
			}
		}
		if strings.Contains(got, "self-signed") || strings.Contains(got, "--") {
			t.Errorf("the fix names a choice the wizard does not offer: %q", got)
		}
		if !g.wizard.next.Disabled() {
			t.Error("Next enabled while the hostname check is red")
		}
		cert.choice.SetSelected(certChoices[0].label)
		if g.wizard.next.Disabled() {
			t.Errorf("Next still disabled with the local CA: %v", cert.blockers())
		}
	})

	// A port another program holds (not this one: the check counts
	// Gatehouse's own listeners as a warning).
	addr := holdPortElsewhere(t)
	onUI(func() { retype(cert.httpsAddr, addr) })
	eventually(t, "the port check to find the port taken", func() bool { return len(cert.blockers()) > 0 })
	onUI(func() {
		if !g.wizard.next.Disabled() {
			t.Errorf("Next enabled with the HTTPS port taken: %q", rowText(cert.portChecks))
		}
		if got := rowText(cert.portChecks); strings.Contains(got, " --") {
			t.Errorf("the port check names a flag: %q", got)
		}
		retype(cert.httpsAddr, "127.0.0.1:0")
	})
	eventually(t, "Next once the port is free", func() bool { return !g.wizard.next.Disabled() })
}

// TestInAppWordsLeaveNoFlags walks every string the engine could show (its
// source's string literals) and checks that the app's words leave no
// command-line flag in it, apart from whole commands to type in a terminal.
func TestInAppWordsLeaveNoFlags(t *testing.T) {
	files, _ := filepath.Glob("../proxyengine/*.go")
	more, _ := filepath.Glob("../internal/*/*.go")
	for _, f := range more {
		// The installer speaks to a terminal: `gatehouse service` prints
		// its words, and the app shows them only as that command's output.
		if !strings.HasPrefix(f, "../internal/service/") {
			files = append(files, f)
		}
	}
	flag := regexp.MustCompile(`(^|[\s(:])--[a-z][a-z-]+`)
	// Commands quoted whole, for a terminal, and CLI-only output.
	commands := regexp.MustCompile("`[^`]*`|\\(gatehouse check [^)]*\\)|certbot [^)]*|the flag for a key is .*|\\(or give this one --[a-z-]+ off\\)")
	argument := regexp.MustCompile(`^--[a-z-]+$`)
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			// Fill in what the engine formats or appends: a flag's name, a fingerprint.
			s = strings.ReplaceAll(s, "--%s", "--some-flag")
			s = strings.ReplaceAll(s, "%s", "AB:CD:EF")
			if strings.HasSuffix(s, " ") {
				s += "AB:CD:EF"
			}
			if err != nil || !flag.MatchString(s) || argument.MatchString(s) {
				return true // a command's argument, not a message
			}
			checked++
			if got := commands.ReplaceAllString(inAppWords(s), ""); flag.MatchString(got) {
				t.Errorf("%s: %q shows in the app as %q", filepath.Base(f), s, inAppWords(s))
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("found only %d messages naming flags in %v: the walk missed the engine's source", checked, files)
	}
	// And a message the start shows as a whole.
	got := plainError(&acme.Error{Summary: "The CA did not answer.", Fix: "Check this machine's internet connection and the --acme-directory URL (production, staging, or your CA's https:// directory)."})
	if strings.Contains(got, "--") || !strings.Contains(got, "Certificate step") {
		t.Errorf("plainError = %q", got)
	}
}

// holdPortElsewhere has another program listen on a loopback port until
// the test ends, and returns its address.
func holdPortElsewhere(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is needed to hold a port in another program")
	}
	cmd := exec.Command(py, "-c", `import socket,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1)
print(s.getsockname()[1], flush=True); sys.stdin.read()`)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	var port int
	if _, err := fmt.Fscan(out, &port); err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
