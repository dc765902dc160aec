"""The guest agent's archive: the sources, plus bytecode the guest's Python can use as is."""

from __future__ import annotations

import importlib.util
import io
import marshal
import sys
import tarfile

import pytest
from labagent import contract

from provisioner import agent


def archive_members() -> dict[str, bytes]:
    data, _version = agent.agent_archive()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
        }


@pytest.mark.skipif(sys.implementation.cache_tag != agent.GUEST_PYTHON_CACHE_TAG,
                    reason="bytecode is shipped only when the host's Python matches the guest's")
def test_every_module_ships_with_unchecked_bytecode_of_its_own_source() -> None:
    members = archive_members()
    sources = {name: data for name, data in members.items() if name.endswith(".py")}
    assert "labagent/server.py" in sources
    for name, source in sources.items():
        pyc = members[importlib.util.cache_from_source(name)]
        flags = int.from_bytes(pyc[4:8], "little")
        assert pyc[:4] == importlib.util.MAGIC_NUMBER
        assert flags == 0b01, f"{name}: hash-based and unchecked"
        assert pyc[8:16] == importlib.util.source_hash(source)
        code = marshal.loads(pyc[16:])
        assert code.co_filename == f"{contract.AGENT_DIR}/{name}"


def test_the_archive_version_is_stable_across_builds() -> None:
    agent.agent_archive.cache_clear()
    _data, first = agent.agent_archive()
    agent.agent_archive.cache_clear()
    _data, second = agent.agent_archive()
    assert first == second and len(first) == 16
