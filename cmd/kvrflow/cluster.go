package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/kvrflow/kvrflow/cluster"
)

// clusterCommands are the cluster subcommands, in the order help lists
// them.
var clusterCommands = []*command{clusterRestoreCommand, clusterAgentCommand, clusterStatusCommand}

// passwordEnv is the environment variable that holds the etcd user's
// password (a flag's value would show in ps).
const passwordEnv = "KVRFLOW_ETCD_PASSWORD"

// etcdFlags are the flags every cluster command takes to reach etcd.
type etcdFlags struct {
	endpoints, cacert, cert, key, user, passwordFile, prefix string
	dialTimeout                                              time.Duration
}

func (e *etcdFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&e.endpoints, "etcd", "", "etcd `ENDPOINTS`, comma-separated host:port or URLs (https:// or --etcd-cacert for TLS) (required)")
	fs.StringVar(&e.cacert, "etcd-cacert", "", "`FILE` of the CA certificate(s) that signed etcd's server certificate (turns TLS on)")
	fs.StringVar(&e.cert, "etcd-cert", "", "client certificate `FILE` for etcd (with --etcd-key; turns TLS on)")
	fs.StringVar(&e.key, "etcd-key", "", "client key `FILE` for etcd")
	fs.StringVar(&e.user, "etcd-user", "", "etcd user `NAME`; the password comes from $"+passwordEnv+" or --etcd-password-file, never from a flag")
	fs.StringVar(&e.passwordFile, "etcd-password-file", "", "`FILE` holding the etcd user's password (one line; wins over $"+passwordEnv+")")
	fs.StringVar(&e.prefix, "etcd-prefix", "/kvrflow/", "key `PREFIX` under which kvrflow keeps its keys in etcd (so it can share an etcd with kvrocks-controller)")
	fs.DurationVar(&e.dialTimeout, "etcd-dial-timeout", 5*time.Second, "how long to wait for etcd to answer when connecting (`D`)")
}

// config checks the flags and returns the connection's configuration.
// Every problem is a usage error naming the flag or file and the cause.
func (e *etcdFlags) config(o *stdio) (cluster.Config, error) {
	var c cluster.Config
	if err := need("--etcd", e.endpoints); err != nil {
		return c, err
	}
	for _, ep := range strings.Split(e.endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			c.Endpoints = append(c.Endpoints, ep)
		}
	}
	if len(c.Endpoints) == 0 {
		return c, usagef("--etcd %q names no endpoint", e.endpoints)
	}
	if (e.cert == "") != (e.key == "") {
		return c, usagef("--etcd-cert and --etcd-key go together: give both or neither")
	}
	for _, f := range []struct{ flag, path string }{{"--etcd-cacert", e.cacert}, {"--etcd-cert", e.cert}, {"--etcd-key", e.key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			return c, usagef("%s %s: %v", f.flag, f.path, errors.Unwrap(err))
		}
	}
	if !strings.HasPrefix(e.prefix, "/") || !strings.HasSuffix(e.prefix, "/") {
		return c, usagef("--etcd-prefix %q: want a key prefix that starts and ends with /, e.g. /kvrflow/", e.prefix)
	}
	if e.dialTimeout <= 0 {
		return c, usagef("--etcd-dial-timeout must be more than 0")
	}
	c.CACert, c.Cert, c.Key, c.User, c.Prefix, c.DialTimeout = e.cacert, e.cert, e.key, e.user, e.prefix, e.dialTimeout
	password, err := e.password(o)
	if err != nil {
		return c, err
	}
	switch {
	case e.user != "" && password == "":
		return c, usagef("--etcd-user %s needs a password: set $%s or --etcd-password-file FILE", e.user, passwordEnv)
	case e.user == "" && password != "":
		return c, usagef("an etcd password is given (%s) but no --etcd-user", e.passwordSource(o))
	}
	c.Password = password
	return c, nil
}

// password returns the password of --etcd-password-file (its first line),
// else of $KVRFLOW_ETCD_PASSWORD.
func (e *etcdFlags) password(o *stdio) (string, error) {
	if e.passwordFile == "" {
		return o.getenv(passwordEnv), nil
	}
	b, err := os.ReadFile(e.passwordFile)
	if err != nil {
		return "", usagef("--etcd-password-file %s: %v", e.passwordFile, errors.Unwrap(err))
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", usagef("--etcd-password-file %s: empty", e.passwordFile)
	}
	return line, nil
}

func (e *etcdFlags) passwordSource(o *stdio) string {
	if e.passwordFile != "" {
		return "--etcd-password-file " + e.passwordFile
	}
	return "$" + passwordEnv
}

// etcdError names the endpoints in an error that involves etcd (its
// refusal, its silence, a timeout, an undecided restore), unless it does
// already, and classes it for the exit code: a refused credential or a
// permission etcd denies is bad input (2): nothing was done, and retrying
// will not help until the operator fixes it. Anything else keeps its own
// class: etcd unreachable leaves an agent's prepared run undecided (5). A
// local error (the node's restore failed) is left as it is.
func etcdError(err error, cfg cluster.Config) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	where := strings.Join(cfg.Endpoints, ",")
	_, isGRPC := grpcstatus.FromError(err)
	fromEtcd := isAuthError(err) || isGRPC || errors.Is(err, cluster.ErrUndecided) || errors.Is(err, context.DeadlineExceeded)
	if fromEtcd && !strings.Contains(msg, where) && !strings.Contains(msg, cfg.Endpoints[0]) {
		err = fmt.Errorf("etcd %s: %w", where, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// gRPC says only that time ran out: say why, if a dial tells.
		if cause := probe(cfg); cause != "" {
			err = fmt.Errorf("%w (%s)", err, cause)
		}
	}
	if isAuthError(err) {
		return refusedError{err, authHint(err, cfg)}
	}
	return err
}

// authHint says what to check when etcd refused the client.
func authHint(err error, cfg cluster.Config) string {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrGRPCAuthFailed):
		return "check --etcd-user and the password in $" + passwordEnv + " or --etcd-password-file"
	case cfg.User == "":
		return "no --etcd-user was given: this etcd has authentication enabled"
	}
	return fmt.Sprintf("etcd user %s may not read and write the keys under %s", cfg.User, cluster.NormPrefix(cfg.Prefix))
}

// errEtcdRefused marks etcd's refusal of the client's credentials or
// permissions; exitCode maps it to 2 before anything else it may wrap
// (an agent's undecided run stays prepared, and says so, but only fixed
// credentials will finish it).
var errEtcdRefused = errors.New("etcd refused the client")

// refusedError is etcd's refusal with a hint of what to check; it
// matches errEtcdRefused and the cause.
type refusedError struct {
	err  error
	hint string
}

func (e refusedError) Error() string   { return e.err.Error() + " (" + e.hint + ")" }
func (e refusedError) Unwrap() []error { return []error{errEtcdRefused, e.err} }

// probe dials the first endpoint as the client would, TCP then (with
// TLS on) a TLS handshake with the flags' files, and returns why that
// fails: "connection refused", "x509: certificate signed by unknown
// authority", ...; "" if it connects.
func probe(cfg cluster.Config) string {
	ep := cfg.Endpoints[0]
	host := ep
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		host = u.Host
	}
	conn, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	if cfg.CACert == "" && cfg.Cert == "" && !strings.HasPrefix(ep, "https://") {
		return ""
	}
	tc, err := (transport.TLSInfo{CertFile: cfg.Cert, KeyFile: cfg.Key, TrustedCAFile: cfg.CACert}).ClientConfig()
	if err != nil {
		return err.Error()
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		tc.ServerName = name
	}
	tconn := tls.Client(conn, tc)
	_ = tconn.SetDeadline(time.Now().Add(2 * time.Second))
	if err := tconn.Handshake(); err != nil {
		return "TLS handshake: " + err.Error()
	}
	return ""
}

// authErrors are etcd's answers to a client it does not admit, or admits
// but does not permit: bad input, not a passing failure.
var authErrors = []error{rpctypes.ErrAuthFailed, rpctypes.ErrUserEmpty, rpctypes.ErrUserNotFound,
	rpctypes.ErrPermissionDenied, rpctypes.ErrInvalidAuthToken, rpctypes.ErrInvalidAuthMgmt,
	rpctypes.ErrGRPCAuthFailed, rpctypes.ErrGRPCUserEmpty, rpctypes.ErrGRPCPermissionDenied}

// isAuthError reports whether err is etcd refusing the client's
// credentials or permissions.
func isAuthError(err error) bool {
	for _, e := range authErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// reportDoc is the --json document of cluster restore and cluster status:
// the restore's name, attempt, decision and each node's vote, reason
// and local outcome (see cluster.Report).
type reportDoc struct {
	*cluster.Report
	exitReport
}

func (d *reportDoc) text(w io.Writer) {
	if d.Report == nil {
		return
	}
	printReport(w, d.Report)
}

// printReport prints a cluster report: a line for the restore, a table of
// the nodes.
func printReport(w io.Writer, r *cluster.Report) {
	fmt.Fprintf(w, "cluster restore %s, attempt %d: decision %s, outcome %s", r.Name, r.Attempt, orDash(r.Decision), orDash(string(r.Outcome)))
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tVOTE\tOUTCOME\tREASON")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.ID, orDash(n.Vote), orDash(n.Outcome), orDash(n.Reason))
	}
	tw.Flush()
}
