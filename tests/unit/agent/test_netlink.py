"""The stdlib rtnetlink messages: layout checked offline, one harmless query on the host."""

import socket
import struct

import pytest
from labagent.network import netlink
from labagent.network.netlink import Rtnl, attr, docker_mac


def attrs(data: bytes) -> dict[int, bytes]:
    """Decode a flat run of rtattrs."""
    found = {}
    while len(data) >= 4:
        length, kind = struct.unpack_from("=HH", data)
        found[kind] = data[4:length]
        data = data[length + (-length % 4):]
    return found


class Recorder(Rtnl):
    """An Rtnl that records requests instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, bytes]] = []

    def request(self, kind: int, flags: int, payload: bytes) -> bytes:
        self.sent.append((kind, flags, payload))
        return b""


def test_attributes_are_padded_to_four_bytes():
    assert attr(3, b"eth0\0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0\0\0"
    assert len(attr(1, b"")) == 4


def test_docker_mac_is_derived_from_the_address():
    assert docker_mac("172.31.0.2") == "02:42:ac:1f:00:02"


def test_one_message_makes_the_veth_on_the_bridge_with_its_peer_in_the_netns():
    rtnl = Recorder()
    rtnl.add_veth("lvabc", 7, "eth0", "02:42:ac:1f:00:05", 42)
    ((kind, flags, payload),) = rtnl.sent
    assert kind == netlink.RTM_NEWLINK and flags & netlink.NLM_F_CREATE and flags & netlink.NLM_F_EXCL
    _, _, index, ifflags, change = netlink.IFINFOMSG.unpack_from(payload)
    # down: it goes up only after its IPv6 link-local address is turned off
    assert (index, ifflags & netlink.IFF_UP, change & netlink.IFF_UP) == (0, 0, 0)
    top = attrs(payload[netlink.IFINFOMSG.size:])
    assert top[netlink.IFLA_IFNAME] == b"lvabc\0"
    assert struct.unpack("=I", top[netlink.IFLA_MASTER]) == (7,)
    info = attrs(top[netlink.IFLA_LINKINFO])
    assert info[netlink.IFLA_INFO_KIND] == b"veth"
    peer = attrs(info[netlink.IFLA_INFO_DATA])[netlink.VETH_INFO_PEER]
    peer_attrs = attrs(peer[netlink.IFINFOMSG.size:])
    assert peer_attrs[netlink.IFLA_IFNAME] == b"eth0\0"
    assert peer_attrs[netlink.IFLA_ADDRESS] == bytes([2, 0x42, 0xac, 0x1f, 0, 5])
    assert struct.unpack("=I", peer_attrs[netlink.IFLA_NET_NS_FD]) == (42,)


def test_no_ipv6_link_local_sets_the_address_generation_mode_to_none():
    rtnl = Recorder()
    rtnl.no_ipv6_link_local(9)
    ((kind, flags, payload),) = rtnl.sent
    assert kind == netlink.RTM_NEWLINK and not flags & netlink.NLM_F_CREATE
    assert netlink.IFINFOMSG.unpack_from(payload)[2] == 9
    spec = attrs(payload[netlink.IFINFOMSG.size:])[netlink.IFLA_AF_SPEC]
    inet6 = attrs(spec)[socket.AF_INET6]
    assert attrs(inet6)[netlink.IFLA_INET6_ADDR_GEN_MODE] == bytes([netlink.IN6_ADDR_GEN_MODE_NONE])


def test_address_and_default_route_messages():
    rtnl = Recorder()
    rtnl.add_address(3, "172.31.0.1", 24)
    rtnl.add_default_route("172.31.0.1")
    (_, _, addr), (_, _, route) = rtnl.sent
    family, prefix, _, _, index = netlink.IFADDRMSG.unpack_from(addr)
    assert (family, prefix, index) == (socket.AF_INET, 24, 3)
    found = attrs(addr[netlink.IFADDRMSG.size:])
    assert found[netlink.IFA_LOCAL] == socket.inet_aton("172.31.0.1")
    assert found[4] == socket.inet_aton("172.31.0.255")
    fields = netlink.RTMSG.unpack_from(route)
    assert fields[1] == 0 and fields[4] == netlink.RT_TABLE_MAIN  # dst_len 0: the default route
    assert attrs(route[netlink.RTMSG.size:])[netlink.RTA_GATEWAY] == socket.inet_aton("172.31.0.1")


def test_a_real_query_and_a_real_refusal():
    """Reading is harmless on the host; a missing link is the kernel's ENODEV as an OSError."""
    try:
        rtnl = Rtnl()
    except OSError as exc:  # no netlink in this sandbox
        pytest.skip(f"no NETLINK_ROUTE: {exc}")
    with rtnl:
        assert rtnl.link_index("lo") == socket.if_nametoindex("lo")
        with pytest.raises(OSError) as caught:
            rtnl.link_index("no-such-link0")
        assert caught.value.errno == 19  # ENODEV
