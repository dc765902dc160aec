"""Just enough rtnetlink, on a stdlib socket, for a bridge and one veth per container.

pyroute2 costs over a second to import under TCG and hundreds of milliseconds per veth
(a fork per netns, a decoder for every reply); these few fixed-shape messages cost
milliseconds. Each request asks for an ACK, so a failure is an OSError with the
kernel's errno, like any other system call.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_AF_SPEC, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE = 26, 8, 1
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RTN_UNICAST = 254, 3, 0, 253, 1
NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags


def attr(kind: int, value: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def name_attr(name: str) -> bytes:
    return attr(IFLA_IFNAME, name.encode() + b"\0")


def ifinfo(index: int = 0, up: bool = False) -> bytes:
    flags = IFF_UP if up else 0
    return IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, IFF_UP if up else 0)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


class Rtnl:
    """One NETLINK_ROUTE socket; it stays in the network namespace it was opened in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, payload: bytes) -> bytes:
        """Send one message and wait for its ACK; return the reply's body (b"" if none).

        A NACK raises OSError with the kernel's errno.
        """
        with self._lock:
            self._seq += 1
            seq = self._seq
            header = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(payload), kind,
                                       flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0)
            self.sock.send(header + payload)
            reply = b""
            while True:
                data = self.sock.recv(65536)
                offset = 0
                while offset + NLMSG_HEADER.size <= len(data):
                    length, mtype, _, mseq, _ = NLMSG_HEADER.unpack_from(data, offset)
                    body = data[offset + NLMSG_HEADER.size:offset + length]
                    offset += max(length + (-length % 4), NLMSG_HEADER.size)
                    if mseq != seq:
                        continue
                    if mtype != NLMSG_ERROR:
                        reply = body
                        continue
                    (code,) = struct.unpack_from("=i", body)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return reply

    # links -------------------------------------------------------------------------------
    def add_bridge(self, name: str) -> bool:
        """Create a bridge; False if it already exists."""
        info = attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"bridge"))
        try:
            self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfo() + name_attr(name) + info)
        except FileExistsError:
            return False
        return True

    def link_index(self, name: str) -> int:
        """The index of a link in this socket's namespace (if_nametoindex asks the caller's)."""
        body = self.request(RTM_GETLINK, 0, ifinfo() + name_attr(name))
        return int(IFINFOMSG.unpack_from(body)[2])

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, up=True))

    def no_ipv6_link_local(self, index: int) -> None:
        """No IPv6 link-local address on a link (set before it goes up).

        Containers get IPv4 only, as Docker's default bridge gives them. Without this
        every veth end made a link-local address, with duplicate address detection,
        router solicitations and systemd-networkd's reaction to each, on the one vCPU.
        A kernel without IPv6 has nothing to turn off.
        """
        spec = attr(IFLA_AF_SPEC, attr(socket.AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE,
                                                              bytes([IN6_ADDR_GEN_MODE_NONE]))))
        try:
            self.request(RTM_NEWLINK, 0, ifinfo(index) + spec)
        except OSError as exc:
            if exc.errno not in (errno.EAFNOSUPPORT, errno.EOPNOTSUPP):
                raise

    def add_veth(self, host: str, master: int, peer: str, peer_mac: str, peer_netns_fd: int) -> None:
        """A veth pair: `host` on the bridge `master` (still down), `peer` (with its MAC) in another netns.

        One message does what `ip link add ... peer ... netns ...; ip link set master` does.
        """
        peer_msg = (ifinfo() + name_attr(peer) + attr(IFLA_ADDRESS, mac_bytes(peer_mac))
                    + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd)))
        info = attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"veth")
                    + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)))
        payload = ifinfo() + name_attr(host) + attr(IFLA_MASTER, struct.pack("=I", master)) + info
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, payload)

    def delete_link(self, name: str) -> bool:
        """Delete a link by name; False if there was none."""
        try:
            self.request(RTM_DELLINK, 0, ifinfo() + name_attr(name))
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # addresses and routes ----------------------------------------------------------------
    def add_address(self, index: int, address: str, prefix: int) -> bool:
        """Add an IPv4 address with its broadcast; False if the link already has it."""
        packed = socket.inet_aton(address)
        network = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
        payload = (IFADDRMSG.pack(socket.AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, index)
                   + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
                   + attr(4, network.broadcast_address.packed))  # IFA_BROADCAST
        try:
            self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, payload)
        except FileExistsError:
            return False
        return True

    def add_default_route(self, gateway: str) -> None:
        payload = (RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                              RTN_UNICAST, 0)
                   + attr(RTA_GATEWAY, socket.inet_aton(gateway)))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, payload)


def docker_mac(ip: str) -> str:
    """02:42 followed by the IPv4 address, as Docker derives a container's MAC."""
    return "02:42:" + ":".join(f"{octet:02x}" for octet in socket.inet_aton(ip))
