module github.com/retryd/retryd/examples/gobreaker

go 1.23.0

require (
	github.com/retryd/retryd/client/go v0.0.0
	github.com/retryd/retryd/client/go/fleetbreaker v0.0.0
	github.com/sony/gobreaker/v2 v2.4.0
)

require (
	golang.org/x/net v0.38.0 // indirect
	golang.org/x/sys v0.31.0 // indirect
	golang.org/x/text v0.23.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250324211829-b45e905df463 // indirect
	google.golang.org/grpc v1.73.0 // indirect
	google.golang.org/protobuf v1.36.6 // indirect
)

replace (
	github.com/retryd/retryd/client/go => ../../client/go
	github.com/retryd/retryd/client/go/fleetbreaker => ../../client/go/fleetbreaker
)
