module github.com/seed18491788/breaker/bench

go 1.26.0

replace github.com/seed18491788/breaker => ../

require (
	github.com/afex/hystrix-go v0.0.0-20180502004556-fa1af6a1f4f5
	github.com/failsafe-go/failsafe-go v0.9.8
	github.com/seed18491788/breaker v0.0.0-00010101000000-000000000000
	github.com/sony/gobreaker/v2 v2.4.0
)

require (
	github.com/bits-and-blooms/bitset v1.24.4 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/redis/go-redis/v9 v9.23.0
	github.com/seed18491788/breaker/redisstate v0.0.0-00010101000000-000000000000
	github.com/smartystreets/goconvey v1.8.1 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace github.com/seed18491788/breaker/redisstate => ../redisstate
