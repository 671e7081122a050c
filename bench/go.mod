module tigerchat/bench

go 1.26.8

replace tigerchat => ../

require (
	github.com/coder/websocket v1.8.15
	github.com/nats-io/nats.go v1.55.0
	tigerchat v0.0.0
)

require (
	github.com/klauspost/compress v1.20.0 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/quic-go/quic-go v0.65.0 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	tigerchat/sdk/go v0.0.0 // indirect
)

replace tigerchat/sdk/go => ../sdk/go
