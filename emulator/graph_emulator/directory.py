"""The emulated directory: which tenants, apps and users exist, and who has a policy.

It starts from the configuration file; tests then grant or revoke a user's
application access policy at runtime through the admin API.
"""

from __future__ import annotations

import threading
import uuid

from .config import App, EmulatorConfig, Tenant, User


class UnknownTenant(KeyError):
    """The tenant id is not in the configuration."""


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class Directory:
    """Tenants, apps and users. Ids are compared case-insensitively, as Entra does."""

    def __init__(self, config: EmulatorConfig, lock: threading.RLock) -> None:
        self._lock = lock
        self._tenants = {tenant.id: tenant for tenant in config.tenants}
        self._users = {
            (tenant.id, user.id): user for tenant in config.tenants for user in tenant.users
        }

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id.lower())

    def app(self, tenant: Tenant, client_id: str) -> App | None:
        wanted = client_id.lower()
        return next((app for app in tenant.apps if app.client_id == wanted), None)

    def user(self, tenant: Tenant, user_id: str) -> User | None:
        """The user, or None when Graph would answer 404.

        With ``anyUser`` every GUID is a user (demo and load runs), but a UPN or any
        other non-GUID still is not: Graph resolves only object ids here.
        """
        key = (tenant.id, user_id.lower())
        with self._lock:
            user = self._users.get(key)
        if user is None and tenant.any_user and is_guid(user_id):
            user = User(id=user_id.lower())
        return user

    def has_access_policy(self, tenant: Tenant, user: User) -> bool:
        """Like Grant-CsApplicationAccessPolicy: granted to this user or globally."""
        return user.access_policy or tenant.global_access_policy

    def set_user(
        self,
        tenant_id: str,
        user_id: str,
        *,
        access_policy: bool | None = None,
        display_name: str | None = None,
        upn: str | None = None,
    ) -> User:
        """Add a user or change the given fields of an existing one."""
        tenant = self.tenant(tenant_id)
        if tenant is None:
            raise UnknownTenant(tenant_id)
        key = (tenant.id, user_id.lower())
        with self._lock:
            old = self._users.get(key) or User(id=key[1])
            user = User(
                id=old.id,
                display_name=old.display_name if display_name is None else display_name,
                upn=old.upn if upn is None else upn,
                access_policy=old.access_policy if access_policy is None else access_policy,
            )
            self._users[key] = user
        return user
