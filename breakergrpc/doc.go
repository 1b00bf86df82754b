// Package breakergrpc puts circuit breakers around gRPC calls: client
// interceptors that refuse calls to a failing service without sending
// them, and server interceptors that shed load while a service's own
// handlers fail.
//
// Each interceptor takes its breakers from a breaker.Registry, one per full
// method ("/pkg.Service/Method") unless WithKey says otherwise, so that
// they can be configured, watched and shared with the other adapters. A
// call is a failure when it ends with one of the codes Unavailable,
// DeadlineExceeded, ResourceExhausted, Internal or Unknown
// (WithFailureCodes and WithFailure change that); a call that ends
// Canceled is left out of the record, as is, on the server, a call whose
// client went away, whatever code its handler made of that; any other end
// is a success. A deadline that passes is a failure: the service was too
// slow for its caller. The
// interceptors judge the codes themselves and give the breaker nil for a
// success, the call's error for a failure, and for a cancelled call an
// error that matches context.Canceled: the breaker's Config.IsFailure and
// IsIgnored see only those, and their defaults leave the judgement as it
// is.
//
// A refused call fails at once with code Unavailable and a message that
// says the circuit is open. The client's refusal matches breaker.ErrOpen
// or breaker.ErrTooManyCalls with errors.Is, so that a caller can tell it
// from an Unavailable sent by a server. While the circuit is open and the
// time of its next trial call is known, a refusal carries that delay as a
// google.rpc.RetryInfo detail and in the trailer grpc-retry-pushback-ms: a
// server's refusal sends it, for gRPC's retry policy to honour, and the
// client's sets it in the trailer that the call asks for with grpc.Trailer.
//
// A stream is judged by its setup and its final status: on the client by
// the first error of NewStream, SendMsg or RecvMsg, io.EOF from RecvMsg
// being a success; on the server by the error its handler returns. A
// client stream that the caller gives up on by cancelling its context is
// left out of the record, so that it cannot hold a half-open trial call.
//
// The interceptors are safe for concurrent use by multiple goroutines.
package breakergrpc
