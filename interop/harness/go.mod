module sensorconnector/interop/harness

go 1.26.0
