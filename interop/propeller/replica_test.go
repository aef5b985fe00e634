package propeller

// The endpoint list propeller's gRPC client resolves, and the health probe the harness waits on
// (replicas themselves are interop/harness's).

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"

	"sensorconnector/interop/harness"
)

// serving asks the connector's standard health service about the server as a whole.
func serving(ctx context.Context, addr string) (bool, string, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, "", err
	}
	defer conn.Close()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return res.GetStatus() == healthpb.HealthCheckResponse_SERVING, res.GetStatus().String(), err
}

// spawnReplica starts a replica with the given keys (the first signs), options and metrics on a port of
// its own, without waiting for it.
func spawnReplica(t *testing.T, name string, env []string, keys []harness.SigningKey, extra ...string) *harness.Replica {
	t.Helper()
	return harness.Spawn(t, harness.Serve{Name: name, Env: env, Keys: keys, Metrics: true, Args: extra})
}

// startReplica spawns a replica and waits until it serves.
func startReplica(t *testing.T, name string, env []string, keys []harness.SigningKey, extra ...string) *harness.Replica {
	t.Helper()
	r := spawnReplica(t, name, env, keys, extra...)
	r.Ready(t, serving)
	return r
}

// endpoints is the address list behind one gRPC target, as Kubernetes Endpoints are for a Service:
// a resolver.Builder that pushes every change to all client connections built on it (the plugin opens
// one connection for its calls and a fresh one for each ListAgents poll).
type endpoints struct {
	scheme string
	mu     sync.Mutex
	addrs  []string
	conns  map[*endpointWatch]struct{}
}

type endpointWatch struct {
	e  *endpoints
	cc resolver.ClientConn
}

func newEndpoints(scheme string) *endpoints {
	e := &endpoints{scheme: scheme, conns: map[*endpointWatch]struct{}{}}
	resolver.Register(e)
	return e
}

func (e *endpoints) Scheme() string { return e.scheme }

// Target is the endpoint string propeller's config names.
func (e *endpoints) Target() string { return e.scheme + ":///connectors" }

func (e *endpoints) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	w := &endpointWatch{e: e, cc: cc}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conns[w] = struct{}{}
	_ = cc.UpdateState(e.stateLocked())
	return w, nil
}

func (e *endpoints) stateLocked() resolver.State {
	s := resolver.State{}
	for _, a := range e.addrs {
		s.Endpoints = append(s.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
		s.Addresses = append(s.Addresses, resolver.Address{Addr: a})
	}
	return s
}

// Set replaces the address list and tells every connection.
func (e *endpoints) Set(addrs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addrs = append([]string(nil), addrs...)
	for w := range e.conns {
		_ = w.cc.UpdateState(e.stateLocked())
	}
}

// Add and Remove change one address.
func (e *endpoints) Add(addr string) {
	e.mu.Lock()
	addrs := append(append([]string(nil), e.addrs...), addr)
	e.mu.Unlock()
	e.Set(addrs...)
}

func (e *endpoints) Remove(addr string) {
	e.mu.Lock()
	var addrs []string
	for _, a := range e.addrs {
		if a != addr {
			addrs = append(addrs, a)
		}
	}
	e.mu.Unlock()
	e.Set(addrs...)
}

func (w *endpointWatch) ResolveNow(resolver.ResolveNowOptions) {}

func (w *endpointWatch) Close() {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	delete(w.e.conns, w)
}
