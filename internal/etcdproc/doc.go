// Package etcdproc runs a real etcd server (Debian's etcd-server, etcd
// 3.4, /usr/bin/etcd or etcd on PATH) as a child process for tests and
// benchmarks: a single member on free loopback ports with its own data
// directory, optionally with TLS (a CA, a server certificate for
// 127.0.0.1 and a client certificate, all made in the test with
// crypto/x509) and with user/password authentication (a root user and a
// user limited to one key prefix, enabled through clientv3's Auth API, so
// etcdctl is not needed).
//
// Launch starts a server and returns an error; Start is the test wrapper:
// without etcd it skips the test with a clear message, except under
// CI=true, where it fails it, and it registers the server's Stop as a
// cleanup. A Server can be stopped (SIGTERM), killed (SIGKILL) and
// started again on the same data directory and ports, for tests of etcd
// going away in the middle of a protocol.
//
// # Crash safety
//
// The package writes only below the data and certificate directories it
// is given or creates; it never touches a system etcd: it listens only on
// ports it picked free on 127.0.0.1 and never reads /etc/default/etcd
// (the child gets a clean environment, so no ETCD_* variable of the
// machine reaches it).
//
// # Caveats
//
// A free port is found by binding port 0 and closing it; another process
// may take it before etcd binds it, so Launch tries again with new ports
// when etcd exits at start. Stop and Kill are idempotent; Restart after
// Kill reuses the same ports, which the kernel releases at once for a
// listener (etcd sets SO_REUSEADDR), so a restart does not race other
// processes for them in practice.
package etcdproc
