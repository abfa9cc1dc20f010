"""The per-process collaborators, built once by the app factory and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from service.config import Settings
from service.core.lifecycle import Lifecycle
from service.core.organizers import Organizers
from service.core.provisioning import Provisioner
from service.core.quota import OrganizerQuota
from service.core.rate_limits import CallerRateLimits
from service.foundation.pinned_session import build_session
from service.graph.client import GraphClient
from service.graph.online_meetings import OnlineMeetings
from service.graph.pacing import GraphPacer
from service.identity.app_tokens import TokenProvider
from service.identity.caller_tokens import CallerTokens
from service.identity.redis_credentials import RedisEntraCredentials
from service.storage.booking_lock import BookingLocks
from service.storage.gateway import RedisGateway
from service.storage.store import BookingStore

EXTENSION = "meeting-provisioning"


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: RedisGateway
    store: BookingStore
    tokens: TokenProvider
    graph: GraphClient
    provisioner: Provisioner
    lifecycle: Lifecycle
    quota: OrganizerQuota
    rate_limits: CallerRateLimits
    # None unless CALLER_AUTH is entra or both.
    caller_tokens: CallerTokens | None
    # None unless REDIS_AUTH is entra: Redis logins with Entra ID tokens, renewed.
    redis_credentials: RedisEntraCredentials | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        session = build_session(
            settings.graph_ca_bundle,
            default_timeout=(settings.graph_connect_timeout, settings.token_timeout),
        )
        redis_credentials = (
            RedisEntraCredentials.from_settings(settings, session)
            if settings.redis.auth == "entra"
            else None
        )
        redis = RedisGateway.from_settings(settings, redis_credentials)
        store = BookingStore.from_settings(settings, redis)
        locks = BookingLocks.from_settings(settings, redis)
        tokens = TokenProvider.from_settings(settings, session)
        pacer = GraphPacer.from_settings(settings, redis)
        graph = GraphClient.from_settings(settings, session, tokens, pacer)
        quota = OrganizerQuota(redis, settings.organizer_monthly_limit)
        organizers = Organizers(settings.organizer_pools, quota)
        meetings = OnlineMeetings(graph)
        provisioner = Provisioner.from_settings(settings, store, locks, meetings, organizers, quota)
        lifecycle = Lifecycle.from_settings(settings, store, locks, meetings)
        rate_limits = CallerRateLimits(redis, settings.default_caller_rate_limit)
        caller_tokens = (
            CallerTokens.from_settings(settings, session) if settings.accepts_tokens else None
        )
        return cls(
            settings,
            redis,
            store,
            tokens,
            graph,
            provisioner,
            lifecycle,
            quota,
            rate_limits,
            caller_tokens,
            redis_credentials,
        )


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found
