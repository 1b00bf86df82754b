package breaker

import (
	"fmt"
	"strconv"
	"time"
)

// ReasonKind says what made a circuit change state.
type ReasonKind uint8

const (
	// ReasonFailureRate: the failure rate reached FailureRateThreshold.
	ReasonFailureRate ReasonKind = iota + 1
	// ReasonSlowCallRate: the slow-call rate reached SlowCallRateThreshold.
	ReasonSlowCallRate
	// ReasonConsecutiveFailures: ConsecutiveFailures failures came in a row.
	ReasonConsecutiveFailures
	// ReasonTripRule: Config.TripRule said to trip.
	ReasonTripRule
	// ReasonOpenWaitOver: the open wait is over; trial calls may go.
	ReasonOpenWaitOver
	// ReasonTrialFailed: a trial call failed.
	ReasonTrialFailed
	// ReasonTrialSlow: a trial call ran slow.
	ReasonTrialSlow
	// ReasonTrialsSucceeded: SuccessThreshold trial calls succeeded.
	ReasonTrialsSucceeded
	// ReasonHalfOpenMaxWait: the half-open period reached HalfOpenMaxWait
	// without a decision, which counts as a failed trial.
	ReasonHalfOpenMaxWait
	// ReasonManual: ForceOpen, Disable, Reset or OpenFor.
	ReasonManual
	// ReasonReconfigured: a new configuration's mode (see Registry.Load).
	ReasonReconfigured
	// ReasonFleet: the SharedState applied the fleet's decision.
	ReasonFleet
)

var reasonNames = [...]string{
	ReasonFailureRate:         "failure-rate",
	ReasonSlowCallRate:        "slow-call-rate",
	ReasonConsecutiveFailures: "consecutive-failures",
	ReasonTripRule:            "trip-rule",
	ReasonOpenWaitOver:        "open-wait-over",
	ReasonTrialFailed:         "trial-failed",
	ReasonTrialSlow:           "trial-slow",
	ReasonTrialsSucceeded:     "trials-succeeded",
	ReasonHalfOpenMaxWait:     "half-open-max-wait",
	ReasonManual:              "manual",
	ReasonReconfigured:        "reconfigured",
	ReasonFleet:               "fleet",
}

// String returns the kind's name, such as "failure-rate".
func (k ReasonKind) String() string {
	if int(k) < len(reasonNames) && reasonNames[k] != "" {
		return reasonNames[k]
	}
	return fmt.Sprintf("ReasonKind(%d)", uint8(k))
}

// MarshalText encodes k as its String.
func (k ReasonKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Reason says why a circuit changed state, with the figures that decided
// it. Its String reads "failure rate 0.6 ≥ 0.5 over 20 calls".
type Reason struct {
	Kind ReasonKind
	// Rate and Threshold: for ReasonFailureRate and ReasonSlowCallRate,
	// the rate reached and the threshold.
	Rate, Threshold float64
	// Calls: the calls in the window (trips), or the trial successes
	// (ReasonTrialsSucceeded).
	Calls int
	// Failures, SlowCalls: for ReasonTripRule, the window's counts.
	Failures, SlowCalls int
	// Consecutive: failures in a row (ReasonConsecutiveFailures,
	// ReasonTripRule).
	Consecutive int
	// Wait: for ReasonHalfOpenMaxWait the half-open period's limit, for
	// ReasonManual by OpenFor the open time asked for.
	Wait time.Duration
}

func (r Reason) String() string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) }
	calls := func(n int) string {
		if n == 1 {
			return "1 call"
		}
		return strconv.Itoa(n) + " calls"
	}
	switch r.Kind {
	case ReasonFailureRate:
		return fmt.Sprintf("failure rate %s ≥ %s over %s", f(r.Rate), f(r.Threshold), calls(r.Calls))
	case ReasonSlowCallRate:
		return fmt.Sprintf("slow-call rate %s ≥ %s over %s", f(r.Rate), f(r.Threshold), calls(r.Calls))
	case ReasonConsecutiveFailures:
		return fmt.Sprintf("%d consecutive failures", r.Consecutive)
	case ReasonTripRule:
		return fmt.Sprintf("trip rule: %s, %d failed, %d slow, %d failed in a row", calls(r.Calls), r.Failures, r.SlowCalls, r.Consecutive)
	case ReasonOpenWaitOver:
		return "open wait over"
	case ReasonTrialFailed:
		return "trial call failed"
	case ReasonTrialSlow:
		return "trial call slow"
	case ReasonTrialsSucceeded:
		return fmt.Sprintf("trial %s succeeded", calls(r.Calls))
	case ReasonHalfOpenMaxWait:
		return fmt.Sprintf("no trial decided within %v", r.Wait)
	case ReasonManual:
		if r.Wait > 0 {
			return fmt.Sprintf("manual, for %v", r.Wait)
		}
		return "manual"
	case ReasonReconfigured:
		return "reconfigured"
	case ReasonFleet:
		return "fleet"
	}
	return r.Kind.String()
}
