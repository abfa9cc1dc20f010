"""Two requests for one booking through `Provisioner.provision`: the second waits for the
first's lock. A live holder either outlasts the wait (BookingBusy) or releases and hands
over its meeting; a holder that died (a worker killed mid-call) leaves a lock that is
taken once it expires. The holder is known to hold the lock once Graph has answered its
createOrGet: its options PATCH comes next, and a latency fault keeps that slow."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections.abc import Callable

import pytest

from service.config import Settings
from service.domain.booking import BookingRequest
from service.domain.callers import Caller
from service.foundation.errors import BookingBusy
from service.wiring import Services
from tests.integration.conftest import OPTIONS_TO_PATCH
from tests.support.emulator import EmulatorHandle

pytestmark = pytest.mark.integration

HOLDER_PATCH_MS = 1000
SHORT_WAIT = 0.3
# A worker whose lock expires soon: still after its token and Graph budgets, as config
# requires, and the Graph budget (createOrGet and PATCH) not too short on a busy machine.
SHORT_LOCK_TTL = 2.1
SHORT_LOCK = {
    "TOKEN_TIMEOUT_SECONDS": "0.5",
    "GRAPH_BUDGET_SECONDS": "1.5",
    "LOCK_TTL_SECONDS": str(SHORT_LOCK_TTL),
}
# The PATCH of the holder that is killed: it outlasts the kill. The emulator still serves
# it (if it was sent at all) once this is over, before the lock expires: before the next
# holder's createOrGet, and so within this test.
KILLED_PATCH_MS = 1000


@pytest.fixture
def options_request(organizer: str, new_request: Callable[..., BookingRequest]) -> BookingRequest:
    return new_request(organizer_id=organizer, options=OPTIONS_TO_PATCH)


def test_a_waiter_gets_booking_busy_when_the_holder_outlasts_its_wait(
    services, make_services, caller, options_request, emulator, external_id_of, inside_options_patch
):
    impatient = make_services(SINGLE_FLIGHT_WAIT_SECONDS=str(SHORT_WAIT))
    emulator.add_fault(target="patchMeeting", latencyMs=HOLDER_PATCH_MS, count=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        holding = pool.submit(services.provisioner.provision, caller, options_request)
        inside_options_patch(external_id_of(options_request.booking_id))
        started = time.monotonic()
        with pytest.raises(BookingBusy) as busy:
            impatient.provisioner.provision(caller, options_request)
        waited = time.monotonic() - started
        held = holding.result(timeout=10)
    assert busy.value.status == 503
    assert busy.value.headers["Retry-After"] == "1"
    # The whole wait, and not until the holder was done.
    assert SHORT_WAIT <= waited < HOLDER_PATCH_MS / 1000, waited
    assert held.created
    # Retried once the holder is done, the request gets its meeting from the store.
    retried = impatient.provisioner.provision(caller, options_request)
    assert retried.replayed
    assert retried.record.view() == held.record.view()
    assert emulator.meetings_for(held.record.external_id) == {"created": 1, "calls": 1}


def test_a_waiter_gets_the_holders_meeting_when_it_releases(
    services, caller, options_request, emulator, external_id_of, inside_options_patch
):
    emulator.add_fault(target="patchMeeting", latencyMs=HOLDER_PATCH_MS, count=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        holding = pool.submit(services.provisioner.provision, caller, options_request)
        inside_options_patch(external_id_of(options_request.booking_id))
        waiter = services.provisioner.provision(caller, options_request)
        held = holding.result(timeout=10)
    assert (held.created, held.replayed) == (True, False)
    assert (waiter.created, waiter.replayed) == (False, True)
    assert waiter.record.view() == held.record.view()
    assert waiter.record.view()["options"]["allowMeetingChat"] == "disabled"
    assert emulator.meetings_for(held.record.external_id) == {"created": 1, "calls": 1}
    assert len(emulator.operations_for(held.record.meeting_id)) == 1


def provision_in_a_new_worker(settings: Settings, caller: Caller, request: BookingRequest) -> None:
    """A worker's whole job in a forked process: collaborators of its own (none of the
    test process's connections), one request."""
    Services.from_settings(settings).provisioner.provision(caller, request)


def test_a_lock_whose_holder_died_is_taken_once_it_expires(
    make_services,
    caller,
    organizer,
    new_request,
    options_request,
    emulator: EmulatorHandle,
    external_id_of,
    inside_options_patch,
):
    worker = make_services(**SHORT_LOCK)
    # Served before, so it has its token: after the wait, its budget goes to Graph alone.
    worker.provisioner.provision(caller, new_request(organizer_id=organizer))
    ext_id = external_id_of(options_request.booking_id)
    # Long enough that the holder is killed inside it, with the lock held.
    emulator.add_fault(target="patchMeeting", latencyMs=KILLED_PATCH_MS, count=1)
    started = time.monotonic()
    holder = multiprocessing.get_context("fork").Process(
        target=provision_in_a_new_worker, args=(worker.settings, caller, options_request)
    )
    holder.start()
    try:
        inside_options_patch(ext_id)
    finally:
        holder.kill()  # SIGKILL: no release, no clean-up
        holder.join()

    # Nobody releases the lock: this request waits until it expires, then provisions.
    taken = worker.provisioner.provision(caller, options_request)
    assert time.monotonic() - started >= SHORT_LOCK_TTL
    assert (taken.created, taken.replayed) == (False, False)
    assert taken.record.view()["options"]["allowMeetingChat"] == "disabled"
    assert taken.record.view()["optionsPending"] is False
    assert emulator.meetings_for(ext_id) == {"created": 1, "calls": 2}
    assert worker.provisioner.provision(caller, options_request).replayed
    assert emulator.meeting(taken.record.meeting_id)["allowMeetingChat"] == "disabled"
