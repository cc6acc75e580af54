"""A machine's networking helpers against a real server: preview URLs and grants (made, listed,
used, revoked), ``wait_for_preview``, the preview proxy target, and SSH access through the relay.

Preview requests go to the server on 127.0.0.1 with the preview host in the ``Host`` header (the
names under ``preview.localhost`` are never resolved), like test/preview.test.ts does."""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

import pytest

from conftest import TestServer
from nullspace import (
    AsyncMachine,
    InvalidArgumentError,
    Machine,
    NullspaceTimeoutError,
    redact_preview_token,
    redact_preview_url,
)

PORT = 8000
PAGE = "preview works\n"


def preview_host(server: TestServer, machine_id: str, port: int) -> str:
    return f"{port}-{machine_id}.preview.localhost:{server.port}"


def get(server: TestServer, host: str, path: str = "/", headers: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
    """GET ``path`` of the preview ``host``, sent to the server on 127.0.0.1."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("GET", path, headers={"host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def get_url(server: TestServer, url: str, headers: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
    """GET a preview URL the SDK gave, through the server on 127.0.0.1 (its host as ``Host``)."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc.endswith(f".preview.localhost:{server.port}"), url
    return get(server, parts.netloc, parts.path + (f"?{parts.query}" if parts.query else ""), headers)


@pytest.fixture(scope="module")
def web(server: TestServer, shared_machine: Machine) -> Machine:
    """The shared machine serving ``PAGE`` on port 8000."""
    shared_machine.files.write("/srv/www/index.html", PAGE)
    shared_machine.commands.run(f"python3 -m http.server {PORT} --directory /srv/www", background=True, tag="web")
    ready = shared_machine.wait_for_preview(PORT)  # the default wait (30 s)
    assert (ready.ready, ready.port, ready.machine_id) == (True, PORT, shared_machine.id)
    return shared_machine


def test_host_info_and_signed_urls_reach_the_service(server: TestServer, web: Machine) -> None:
    host = preview_host(server, web.id, PORT)
    info = web.get_host_info(PORT)
    assert info.host == host and info.port == PORT and info.machine_id == web.id
    assert info.id.startswith("pvg_") and info.token.startswith("nspv_")
    assert info.url == f"http://{host}/?ns_token={info.token}"
    assert info.websocket_url.startswith(f"ws://{host}/") and info.token in info.websocket_url
    assert get_url(server, info.url) == (200, PAGE)
    url = web.get_url(PORT, expires_in=600)
    assert isinstance(url, str) and get_url(server, url) == (200, PAGE)
    assert web.get_websocket_url(PORT).startswith(f"ws://{host}/?ns_token=nspv_")
    preview = web.get_preview_url(PORT, expires_in=120)
    assert (preview.expires_at - preview.created_at).total_seconds() == pytest.approx(120, abs=2)
    assert get(server, host, headers={"x-nullspace-preview-token": preview.token}) == (200, PAGE)
    # No grant: 401; a made-up one: 403.
    assert get(server, host)[0] == 401
    assert get(server, host, "/?ns_token=nspv_madeup")[0] == 403
    redacted = redact_preview_url(preview.url)
    assert preview.token not in redacted and redact_preview_token(preview.token) in redacted


def test_grants_are_listed_and_a_revoked_one_is_refused(server: TestServer, web: Machine) -> None:
    host = preview_host(server, web.id, PORT)
    grant = web.create_signed_preview_url(PORT, expires_in=600)
    other = web.create_signed_preview_url(PORT)
    header = {"x-nullspace-preview-token": grant.token}
    assert get(server, host, headers=header) == (200, PAGE)
    listed = {g.id: g for g in web.list_preview_urls(port=PORT)}
    assert {grant.id, other.id} <= set(listed)
    assert listed[grant.id].token_hint == redact_preview_token(grant.token)
    assert listed[grant.id].revoked_at is None and listed[grant.id].port == PORT
    assert grant.id in {g.id for g in web.list_preview_urls()}
    assert web.list_preview_urls(port=PORT + 1) == []
    revoked = web.revoke_preview_url(grant.id)
    assert (revoked.id, revoked.revoked, revoked.port) == (grant.id, True, PORT)
    assert revoked.revoked_at is not None
    status, body = get(server, host, headers=header)
    assert status == 403, body
    # The other grant of the same port still works.
    assert get(server, host, headers={"x-nullspace-preview-token": other.token}) == (200, PAGE)
    again = {g.id: g for g in web.list_preview_urls(port=PORT)}
    assert again[grant.id].revoked_at == revoked.revoked_at and again[other.id].revoked_at is None


def test_preview_proxy_target(server: TestServer, web: Machine) -> None:
    host = preview_host(server, web.id, PORT)
    target = web.create_preview_proxy_target(PORT, expires_in=300)
    assert target.upstream_url == f"http://{host}/" and "nspv_" not in target.upstream_url
    assert target.websocket_upstream_url == f"ws://{host}/"
    assert list(target.headers) == ["x-nullspace-preview-proxy-token"]
    assert get(server, host, headers=target.headers) == (200, PAGE)
    # The proxy token works in its own header only.
    token = target.headers["x-nullspace-preview-proxy-token"]
    assert get(server, host, f"/?ns_token={token}")[0] == 403


def test_wait_for_preview_times_out_on_a_silent_port(server: TestServer, web: Machine) -> None:
    with pytest.raises(NullspaceTimeoutError) as err:
        web.wait_for_preview(PORT + 9, timeout=1)
    assert (err.value.code, err.value.status) == ("timeout", 504)


def test_async_preview_helpers(server: TestServer, web: Machine) -> None:
    host = preview_host(server, web.id, PORT)

    async def main() -> Any:
        m = AsyncMachine(web.id)
        ready = await m.wait_for_preview(PORT, timeout=10)
        grant = await m.create_signed_preview_url(PORT, expires_in=60)
        info = await m.get_host_info(PORT)
        url = await m.get_url(PORT)
        listed = [g.id for g in await m.list_preview_urls(port=PORT)]
        target = await m.create_preview_proxy_target(PORT)
        return ready, grant, info, url, listed, target

    ready, grant, info, url, listed, target = asyncio.run(main())
    assert ready.ready is True and grant.id in listed and info.id in listed
    assert get_url(server, url) == (200, PAGE)
    assert get(server, host, headers=target.headers) == (200, PAGE)
    asyncio.run(AsyncMachine(web.id).revoke_preview_url(grant.id))
    assert get(server, host, headers={"x-nullspace-preview-token": grant.token})[0] == 403


def test_ssh_access_through_the_relay(server: TestServer, shared_machine: Machine, tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is missing (openssh-client; scripts/setup.sh installs it)")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "py-test", "-f", str(key)], check=True)
    access = shared_machine.create_ssh_access(public_key=(tmp_path / "id_ed25519.pub").read_text(), expires_in_minutes=5)
    assert access.machine_id == shared_machine.id and access.user == "root"
    assert access.certificate.startswith("ssh-ed25519-cert-v01@openssh.com ")
    assert access.known_hosts and access.certificate_id
    assert access.expires_at > access.valid_after
    assert access.command.startswith(f"ssh -p {access.port} ") and access.command.endswith(f"root@{access.host}")
    assert f"HostKeyAlias={shared_machine.id}" in access.command
    default = shared_machine.create_ssh_access(public_key=(tmp_path / "id_ed25519.pub").read_text())
    assert default.certificate_id != access.certificate_id and default.expires_at > access.expires_at
    with pytest.raises(InvalidArgumentError) as bad:
        shared_machine.create_ssh_access(public_key="ssh-ed25519 nope")
    assert bad.value.code == "invalid_argument"
    if shutil.which("ssh") is None:
        pytest.skip("ssh is missing (openssh-client): the certificate was checked, the login is not")
    # The relay listens where the server does: on this host, never anywhere else.
    assert access.host.startswith("127."), access.host
    cert = tmp_path / "id_ed25519-cert.pub"
    cert.write_text(access.certificate + "\n")
    known = tmp_path / "known_hosts"
    known.write_text(access.known_hosts + "\n")
    out = subprocess.run(
        [
            "ssh", "-p", str(access.port), "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", f"CertificateFile={cert}", "-o", f"UserKnownHostsFile={known}",
            "-o", f"HostKeyAlias={shared_machine.id}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-F", os.devnull,
            f"{access.user}@{access.host}", "hostname",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == shared_machine.id.replace("_", "-")
