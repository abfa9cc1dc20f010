"""Who organizes a booking's meeting: the organizer the caller named, or the member of a
named pool with the most room left in its monthly quota."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from service.core.quota import OrganizerQuota
from service.domain.booking import BookingRequest
from service.domain.callers import Caller
from service.foundation.errors import InvalidRequest, OrganizerNotAllowed


class Organizers:
    def __init__(self, pools: Mapping[str, tuple[str, ...]], quota: OrganizerQuota) -> None:
        self.pools = pools
        self.quota = quota

    def check(self, caller: Caller, request: BookingRequest) -> None:
        """Refuse, before anything else happens, what the caller may not ask for."""
        if request.organizer_pool is None:
            if not caller.may_book_for(request.organizer_id):
                raise OrganizerNotAllowed(
                    f"Caller {caller.id!r} may not book meetings for organizer "
                    f"{request.organizer_id}. Ask an operator to add the organizer to this "
                    "caller's entry in CLIENTS_FILE."
                )
            return
        self._members(caller, request.organizer_pool)

    def assign(self, caller: Caller, request: BookingRequest) -> BookingRequest:
        """The request with its organizer decided. Called once per booking (generation),
        under the booking's lock; the choice is stored with the meeting, which makes it
        sticky for every later request of the booking."""
        if request.organizer_pool is None:
            return request
        members = self._members(caller, request.organizer_pool)
        chosen = self.quota.least_used(members)
        return dataclasses.replace(request, organizer_id=chosen)

    def _members(self, caller: Caller, pool: str) -> list[str]:
        if pool not in self.pools:
            known = ", ".join(sorted(self.pools)) or "none are configured"
            raise InvalidRequest(
                f"Unknown organizer pool {pool!r}.",
                {"organizerPool": f"must name a pool from ORGANIZER_POOLS_FILE ({known})"},
            )
        members = [member for member in self.pools[pool] if caller.may_book_for(member)]
        if not members:
            raise OrganizerNotAllowed(
                f"Caller {caller.id!r} may not book for any organizer of pool {pool!r}. Ask an "
                "operator to add them to this caller's entry in CLIENTS_FILE."
            )
        return members
