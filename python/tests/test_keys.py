"""Tenants' API keys against a real server: the operator's key creates, lists and revokes them
(``ApiKey``, sync and async); a tenant's key sees only its own machines, another tenant's machine
answers as if it did not exist, key management is refused to it, and a revoked key at once."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from conftest import TestServer
from nullspace import (
    ApiKey,
    AsyncApiKey,
    AsyncMachine,
    AuthenticationError,
    Machine,
    MachineNotFoundError,
    MachineQuery,
    NotFoundError,
    PermissionDeniedError,
)


def tenant_name() -> str:
    return f"py-{secrets.token_hex(4)}"


def test_keys_and_isolation(server: TestServer) -> None:
    a_tenant, b_tenant = tenant_name(), tenant_name()
    a = ApiKey.create(a_tenant, name="python a")
    b = ApiKey.create(b_tenant)
    assert a.id.startswith("key_") and a.key.startswith("ns_") and len(a.key) == 35
    assert (a.tenant, a.name, b.name) == (a_tenant, "python a", None)
    listed = {k.id: k for k in ApiKey.list()}
    assert listed[a.id].hint == a.key[-4:] and listed[a.id].tenant == a_tenant
    assert not hasattr(listed[a.id], "key")

    mine = Machine.create(api_key=a.key)
    try:
        # The other tenant's key: the machine does not exist for it, nor in its list.
        with pytest.raises(MachineNotFoundError) as other:
            Machine.connect(mine.id, api_key=b.key)
        assert (other.value.code, other.value.status) == ("machine_not_found", 404)
        assert [m.id for m in Machine.list(api_key=b.key)] == []
        assert [m.id for m in Machine.list(api_key=a.key)] == [mine.id]
        # The operator sees it, and whose it is; a tenant's key may not manage keys.
        assert mine.id in [m.id for m in Machine.list()]
        assert Machine.connect(mine.id).get_info().tenant == a_tenant
        assert [m.id for m in Machine.list(query=MachineQuery(tenant=a_tenant))] == [mine.id]
        assert [m.id for m in Machine.list(query=MachineQuery(tenant=b_tenant))] == []
        with pytest.raises(PermissionDeniedError):
            ApiKey.list(api_key=a.key)
    finally:
        mine.kill()

    revoked = ApiKey.revoke(a.id)
    assert revoked.id == a.id and a.id not in [k.id for k in ApiKey.list()]
    with pytest.raises(AuthenticationError):
        Machine.list(api_key=a.key)
    with pytest.raises(NotFoundError):
        ApiKey.revoke(a.id)
    ApiKey.revoke(b.id)


def test_keys_async(server: TestServer) -> None:
    async def main() -> None:
        created = await AsyncApiKey.create(tenant_name())
        assert created.id in [k.id for k in await AsyncApiKey.list()]
        page = await AsyncMachine.list(api_key=created.key)
        assert [m async for m in page] == []
        await AsyncApiKey.revoke(created.id)
        with pytest.raises(AuthenticationError):
            await AsyncMachine.list(api_key=created.key)

    asyncio.run(main())
