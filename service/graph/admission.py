"""May this call send its next attempt now? The circuit breaker's say and the app's pace
both decide; and what each attempt found goes back to both: to the circuit (a call's
failures count once, service.graph.breaker) and, for Graph's app-wide Retry-After, to the
app's throttle gate (service.graph.pacing)."""

from __future__ import annotations

from service.foundation.backoff import Budget
from service.graph import telemetry
from service.graph.breaker import CircuitBreaker, CircuitOpen, State
from service.graph.call import Sent
from service.graph.call_errors import budget_exhausted, circuit_open
from service.graph.pacing import GraphPacer, Refused
from service.graph.retry_policy import Failure, app_wide_retry_after


class Admission:
    """One call's admissions, attempt after attempt."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        pacer: GraphPacer | None,
        budget: Budget,
        *,
        budget_seconds: float,
        client_request_id: str,
    ) -> None:
        """`pacer`: None for neither pace nor gate; `budget_seconds`: GRAPH_BUDGET_SECONDS,
        as the errors name it."""
        self.breaker = breaker
        self.pacer = pacer
        self.budget = budget
        self.budget_seconds = budget_seconds
        self.client_request_id = client_request_id
        self.graph_failed = False  # an attempt of this call already counted for the circuit

    def wait_for_turn(self) -> None:
        """Return when the next attempt may be sent; raise the call's error when the circuit
        refuses it or its turn comes after the budget ends."""
        if self.breaker.state is State.OPEN:
            self._ask_circuit()  # refused at once, without waiting a turn
        # The turn before the circuit: a half-open circuit admits one probe, which must
        # then be sent, not refused by the pacer.
        self._take_turn()
        self._ask_circuit()

    def record(self, outcome: Sent | Failure) -> None:
        if outcome.graph_failed:
            self.breaker.record_failure(retry=self.graph_failed)
            self.graph_failed = True
        else:
            self.breaker.record_success()
        if isinstance(outcome, Failure) and self.pacer is not None:
            wait = app_wide_retry_after(outcome)
            if wait is not None:
                self.pacer.close_gate(wait)

    def _take_turn(self) -> None:
        """Wait for the app's next turn to call Graph (GRAPH_RATE_LIMIT, Graph's last
        Retry-After); when it comes after the budget ends, answer as an exhausted budget."""
        if self.pacer is None:
            return
        try:
            self.pacer.take_turn(self.budget)
        except Refused as refused:
            reason = "throttled" if refused.gated else "paced"
            raise budget_exhausted(
                Failure(reason),
                refused.wait,
                budget_seconds=self.budget_seconds,
                client_request_id=self.client_request_id,
            ) from refused

    def _ask_circuit(self) -> None:
        try:
            self.breaker.before_call()
        except CircuitOpen as refused:
            telemetry.circuit_refused(self.client_request_id, refused.failures)
            raise circuit_open(refused, self.breaker.threshold, self.client_request_id) from None
