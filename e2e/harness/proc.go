package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/realmstream/realmstream/libs/freeport"
)

// Proc is one service process that can be started, killed and restarted any
// number of times with the same command line (and so the same ports).
type Proc struct {
	Name string   // e.g. "world-2"
	Path string   // binary
	Args []string // flags
	Env  []string // extra environment (KEY=value), on top of the test's
	// ReadyURL is polled by WaitReady (http://<ops addr>/readyz); empty means
	// "ready when started".
	ReadyURL string
	LogPath  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error
	expected bool // the current process is being killed/stopped on purpose
	starts   int
	tail     *tailBuffer
	logFile  *os.File
	crashes  []string // unexpected exits
}

// Start starts the process (it must not be running).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("harness: %s already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	if p.tail == nil {
		p.tail = &tailBuffer{max: 64 << 10}
	}
	if p.logFile == nil && p.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(p.LogPath), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		p.logFile = f
	}
	var out io.Writer = p.tail
	if p.logFile != nil {
		out = io.MultiWriter(p.tail, p.logFile)
		fmt.Fprintf(p.logFile, "\n===== harness: start #%d of %s at %s: %s %s\n", p.starts+1, p.Name,
			time.Now().UTC().Format(time.RFC3339Nano), p.Path, strings.Join(p.Args, " "))
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group: a kill -9 of the service never reaches the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("harness: start %s: %w", p.Name, err)
	}
	p.cmd = cmd
	p.starts++
	p.expected = false
	done := make(chan struct{})
	p.done = done
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		if !p.expected {
			p.crashes = append(p.crashes, fmt.Sprintf("%s exited unexpectedly at %s: %v", p.Name,
				time.Now().UTC().Format(time.RFC3339Nano), err))
		}
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Pid returns the pid of the running process, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Starts returns how many times the process was started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Crashes lists the exits nobody asked for.
func (p *Proc) Crashes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.crashes...)
}

func (p *Proc) signal(sig syscall.Signal) (chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil, fmt.Errorf("harness: %s is not running", p.Name)
	}
	p.expected = true
	if p.logFile != nil {
		fmt.Fprintf(p.logFile, "\n===== harness: %v to %s (pid %d) at %s\n", sig, p.Name, p.cmd.Process.Pid,
			time.Now().UTC().Format(time.RFC3339Nano))
	}
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		return nil, fmt.Errorf("harness: %v %s: %w", sig, p.Name, err)
	}
	return p.done, nil
}

// Kill sends SIGKILL (kill -9: no shutdown code runs) and waits for the exit.
func (p *Proc) Kill() error {
	done, err := p.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-done
	return nil
}

// Stop sends SIGTERM and waits up to timeout for a clean exit (then kills).
// It returns the exit error of the process (nil for exit code 0).
func (p *Proc) Stop(timeout time.Duration) error {
	done, err := p.signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.exitErr
	case <-time.After(timeout):
		_ = p.Kill()
		return fmt.Errorf("harness: %s did not stop within %v of SIGTERM (killed)", p.Name, timeout)
	}
}

// Freeze stops the process with SIGSTOP (a long GC pause or a VM stall);
// Thaw resumes it.
func (p *Proc) Freeze() error { _, err := p.signalNoExpect(syscall.SIGSTOP); return err }

// Thaw resumes a frozen process.
func (p *Proc) Thaw() error { _, err := p.signalNoExpect(syscall.SIGCONT); return err }

func (p *Proc) signalNoExpect(sig syscall.Signal) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0, fmt.Errorf("harness: %s is not running", p.Name)
	}
	return p.cmd.Process.Pid, syscall.Kill(p.cmd.Process.Pid, sig)
}

// WaitReady polls ReadyURL until it answers 200, the process exits, or
// timeout passes.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("harness: %s was never started", p.Name)
	}
	if p.ReadyURL == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl := &http.Client{Timeout: time.Second}
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.ReadyURL, nil)
		resp, err := cl.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		select {
		case <-done:
			return fmt.Errorf("harness: %s exited before ready: %v\n%s", p.Name, p.exitErrLocked(), p.Tail(4096))
		case <-ctx.Done():
			return fmt.Errorf("harness: %s not ready within %v (last /readyz: %s)\n%s", p.Name, timeout, last, p.Tail(4096))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Proc) exitErrLocked() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Ready reports whether /readyz answers 200 now.
func (p *Proc) Ready() bool {
	if p.ReadyURL == "" {
		return p.Running()
	}
	cl := &http.Client{Timeout: 500 * time.Millisecond}
	resp, err := cl.Get(p.ReadyURL)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Tail returns up to n bytes of the latest output.
func (p *Proc) Tail(n int) string {
	p.mu.Lock()
	t := p.tail
	p.mu.Unlock()
	if t == nil {
		return ""
	}
	return t.last(n)
}

// Close kills the process if it runs and closes its log.
func (p *Proc) Close() {
	if p.Running() {
		_ = p.Kill()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.logFile != nil {
		_ = p.logFile.Close()
		p.logFile = nil
	}
}

type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, b...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max/2:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) last(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) <= n {
		return string(t.b)
	}
	return string(t.b[len(t.b)-n:])
}

// FreePort returns a TCP port that was free a moment ago, below the
// ephemeral range (libs/freeport).
func FreePort() (int, error) { return freeport.Port() }

// ErrNotRunning is returned by operations on a stopped process.
var ErrNotRunning = errors.New("harness: process not running")
