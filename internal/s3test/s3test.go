// Package s3test starts a real S3-compatible server (versitygw with its
// posix backend) for tests: on a free loopback port, with a temporary
// directory, stopped when the test ends. It is no mock: the tests of the
// S3 backend talk to the same server operators run.
//
// The binary is $MEPHSTORE_VERSITYGW, versitygw on PATH, or
// $GOPATH/bin/versitygw (scripts/deps installs it there). Without it a
// test skips, unless MEPHSTORE_S3_REQUIRED is set (scripts/test sets it),
// when it fails: CI never hides a missing server behind a skip.
package s3test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Keys are the root credentials every test server is started with.
const (
	AccessKey = "mephstoretest"
	SecretKey = "mephstoretestsecret"
)

// Server is one running versitygw.
type Server struct {
	Dir  string // the posix backend's root: one directory per bucket
	Addr string // 127.0.0.1:port
	bin  string
	cmd  *exec.Cmd
	done chan struct{}
	t    testing.TB
}

// Binary is the versitygw to run, or "" when there is none.
func Binary() string {
	if b := os.Getenv("MEPHSTORE_VERSITYGW"); b != "" {
		return b
	}
	if b, err := exec.LookPath("versitygw"); err == nil {
		return b
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(os.Getenv("GOPATH"), "bin"), filepath.Join(os.Getenv("HOME"), "go", "bin")} {
		if dir == "" || dir == "bin" {
			continue
		}
		b := filepath.Join(dir, "versitygw")
		if fi, err := os.Stat(b); err == nil && !fi.IsDir() {
			return b
		}
	}
	return ""
}

// Start runs a fresh server for t, stopped at its end.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv("MEPHSTORE_S3_REQUIRED") != "" {
			t.Fatal("versitygw is not installed and MEPHSTORE_S3_REQUIRED is set (run scripts/deps)")
		}
		t.Skip("versitygw is not installed (scripts/deps installs it); S3 tests need a real server")
	}
	s := &Server{Dir: t.TempDir(), bin: bin, t: t}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.start(freePort(t)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() { s.Kill() })
	return s
}

// Endpoint is the server's URL.
func (s *Server) Endpoint() string { return "http://" + s.Addr }

// MakeBucket creates a bucket as an administrator would (a directory of
// the posix backend is a bucket).
func (s *Server) MakeBucket(name string) {
	s.t.Helper()
	if err := os.Mkdir(filepath.Join(s.Dir, name), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

// Env sets the standard AWS variables to the server's keys for t, the way
// an operator passes credentials.
func (s *Server) Env(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *Server) start(addr string) error {
	cmd := exec.Command(s.bin, "--port", addr, "--quiet", "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	log, err := os.Create(filepath.Join(s.t.TempDir(), "versitygw.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	s.cmd, s.done, s.Addr = cmd, done, addr
	return s.waitUp(log.Name())
}

// waitUp polls until the server answers HTTP or exits.
func (s *Server) waitUp(logName string) error {
	deadline := time.Now().Add(20 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			b, _ := os.ReadFile(logName)
			return fmt.Errorf("versitygw exited: %s", b)
		default:
		}
		if resp, err := c.Get(s.Endpoint()); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Kill()
	return errors.New("versitygw did not answer within 20s")
}

// Kill stops the server at once (SIGKILL), as a crash or a pulled cable.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port and directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(s.Addr); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // the port is released asynchronously
	}
	s.t.Fatalf("restart versitygw on %s: %v", s.Addr, err)
}

// Port is the server's port number.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}
