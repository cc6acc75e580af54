"""Volumes against a real server: ``Volume`` create/list/get/delete, a volume mounted at create
with ``VolumeMount``, and a machine's attachments at run time (attach, list, health, a broken
mount repaired by remount, detach); sync and async. Each test uses volumes of its own name."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import TestServer
from nullspace import (
    AsyncMachine,
    AsyncVolume,
    ConflictError,
    Machine,
    NotFoundError,
    Volume,
    VolumeMount,
    VolumeNotFoundError,
)
from nullspace.models import VolumeInfo

# The smallest size the server makes a volume filesystem of, as its own tests use.
SIZE_MB = 300


def fresh_name() -> str:
    return f"py-{secrets.token_hex(4)}"


@pytest.fixture
def volume(server: TestServer) -> Iterator[VolumeInfo]:
    """A volume for one test, deleted after it (after its machines are killed)."""
    made = Volume.create(fresh_name(), size_mb=SIZE_MB)
    try:
        yield made
    finally:
        try:
            Volume.delete(made.id)
        except NotFoundError:
            pass  # the test deleted it


def break_mount(server: TestServer, machine_id: str, path: str) -> None:
    """Unmounts a volume inside the machine from the host, as a fault would (lazy unmount in the
    machine's mount namespace, found through runc's state of this server's own machine)."""
    state = subprocess.run(
        ["runc", "--root", str(Path(server.data_dir) / "runc"), "state", machine_id],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = json.loads(state.stdout)["pid"]
    subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "-r", "umount", "-l", path], check=True)


def test_volume_create_list_get_delete(server: TestServer) -> None:
    name = fresh_name()
    made = Volume.create(name, size_mb=SIZE_MB)
    try:
        assert made.id.startswith("vol_") and made.name == name and made.size_mb == SIZE_MB
        assert made.attachments == [] and made.created_at is not None
        assert made.id in [v.id for v in Volume.list()]
        assert Volume.get(name).id == made.id and Volume.get(made.id).name == name
        with pytest.raises(ConflictError):
            Volume.create(name, size_mb=SIZE_MB)
    finally:
        deleted = Volume.delete(name)
    assert deleted.id == made.id
    with pytest.raises(VolumeNotFoundError) as gone:
        Volume.get(made.id)
    assert (gone.value.code, gone.value.status) == ("volume_not_found", 404)
    assert made.id not in [v.id for v in Volume.list()]


def test_mounted_at_create_then_attached_checked_repaired_and_detached(server: TestServer, volume: VolumeInfo) -> None:
    m = Machine.create(template="base", volumes=[VolumeMount(volume.name, "/data")])
    server.machine_ids.add(m.id)
    try:
        [at_create] = m.get_info().volumes
        assert (at_create.volume_id, at_create.mount_path, at_create.read_only) == (volume.id, "/data", False)
        assert m.commands.run("mkdir -p /data/projects/a && echo kept > /data/projects/a/file").exit_code == 0
        # A volume's attachments are models, like a machine's.
        [listed] = Volume.get(volume.id).attachments
        assert (listed.id, listed.machine_id, listed.mount_path, listed.read_only) == (at_create.id, m.id, "/data", False)

        sub = m.attach_volume(volume.name, "/mnt/sub", subpath="projects/a")
        assert sub.id.startswith("vat_") and sub.subpath == "projects/a"
        assert sub.health is not None and sub.health.healthy is True
        ro = m.attach_volume(VolumeMount(volume.id, "/mnt/ro", read_only=True))
        assert ro.read_only is True
        assert m.commands.run("cat /mnt/sub/file").stdout == "kept\n"
        denied = m.commands.run("echo x > /mnt/ro/other")
        assert denied.exit_code != 0 and "Read-only file system" in denied.stderr
        assert [a.id for a in m.list_volumes()] == [at_create.id, sub.id, ro.id]

        health = m.get_volume_health(sub.id)
        assert (health.attachment_id, health.healthy) == (sub.id, True)
        break_mount(server, m.id, "/mnt/sub")
        broken = m.get_volume_health(sub.id)
        assert broken.healthy is False and "/mnt/sub" in (broken.reason or "")
        assert m.commands.run("cat /mnt/sub/file").exit_code != 0
        repaired = m.remount_volume(sub.id)
        assert repaired.id == sub.id and repaired.health.healthy is True
        assert m.get_volume_health(sub.id).healthy is True
        assert m.commands.run("cat /mnt/sub/file").stdout == "kept\n"

        assert m.detach_volume(ro.id).id == ro.id
        assert [a.id for a in m.list_volumes()] == [at_create.id, sub.id]
        assert m.commands.run("grep -c ' /mnt/ro ' /proc/self/mountinfo").stdout.strip() == "0"
        with pytest.raises(NotFoundError):
            m.detach_volume(ro.id)
        with pytest.raises(ConflictError):
            Volume.delete(volume.id)  # attached to a live machine
    finally:
        m.kill()
    after = Volume.get(volume.id)
    assert after.attachments == [] and after.used_bytes > 0


def test_async_volumes(server: TestServer) -> None:
    name = fresh_name()

    async def main() -> Any:
        made = await AsyncVolume.create(name, size_mb=SIZE_MB)
        try:
            listed = [v.id for v in await AsyncVolume.list()]
            got = await AsyncVolume.get(name)
            async with await AsyncMachine.create(template="base", volumes=[{"volume": name, "mount_path": "/v"}]) as m:
                server.machine_ids.add(m.id)
                a = await m.attach_volume(name, "/w", read_only=True)
                await m.commands.run("echo async > /v/f")
                seen = (await m.commands.run("cat /w/f")).stdout
                health = await m.get_volume_health(a.id)
                remounted = await m.remount_volume(a.id)
                ids = [x.id for x in await m.list_volumes()]
                await m.detach_volume(a.id)
                left = [x.id for x in await m.list_volumes()]
        finally:
            deleted = await AsyncVolume.delete(name)
        return made, listed, got, seen, health, remounted, ids, a, left, deleted

    made, listed, got, seen, health, remounted, ids, a, left, deleted = asyncio.run(main())
    assert made.id in listed and got.id == made.id and deleted.id == made.id
    assert seen == "async\n" and health.healthy is True and remounted.health.healthy is True
    assert len(ids) == 2 and ids[1] == a.id and left == ids[:1]
    with pytest.raises(VolumeNotFoundError):
        Volume.get(made.id)
