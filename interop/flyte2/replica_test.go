package flyte2

// Live `sensor-connector serve` processes on loopback (interop/harness's), and the health probe that
// says one serves Flyte 2's connector service.

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"sensorconnector/interop/harness"
)

// serving asks the connector's standard health service about flyteidl2's connector service.
func serving(ctx context.Context, addr string) (bool, string, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, "", err
	}
	defer conn.Close()
	res, err := healthpb.NewHealthClient(conn).Check(ctx,
		&healthpb.HealthCheckRequest{Service: "flyteidl2.connector.AsyncConnectorService"})
	return res.GetStatus() == healthpb.HealthCheckResponse_SERVING, res.GetStatus().String(), err
}

// startReplica starts a replica signing with `key`, draining at once, and waits until it serves.
func startReplica(t *testing.T, name string, env []string, key harness.SigningKey) *harness.Replica {
	t.Helper()
	return harness.Start(t, harness.Serve{Name: name, Env: env, Keys: []harness.SigningKey{key},
		Args: []string{"--drain-period", "0", "--grace-period", "1"}}, serving)
}
