"""Which addresses the fetcher may connect to: one policy, written out, the same on every Python.

The standard library's `is_global` and `is_private` change between Python
releases (3.11, 3.12 and 3.13 disagree on 64:ff9b:1::/48, for one), so the
verdict here comes from explicit tables drawn from IANA's special-purpose
address registries, and nothing else:

- refused: never fetched, even with ALLOW_PRIVATE_URLS=true: link-local,
  multicast, reserved, documentation, and the clouds' metadata services;
- private: fetched only with ALLOW_PRIVATE_URLS=true (local development):
  loopback, RFC 1918, shared address space, unique-local IPv6;
- public: everything else in IPv4, and IPv6 global unicast (2000::/3).

An IPv6 address that carries an IPv4 one (mapped, SIIT, compatible, NAT64's
well-known /96, 6to4) gets the verdict of the IPv4 address it carries.
Transition forms whose embedding cannot be known from the address alone
(the rest of 64:ff9b::/32, which RFC 6052's other prefix lengths would use,
the local-use 64:ff9b:1::/48, Teredo) are refused outright.
"""

import ipaddress
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def networks(table: dict[str, str]) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
    return [(ipaddress.ip_network(net), why) for net, why in table.items()]


# Metadata services answer credentials to whoever asks from inside the instance.
METADATA = networks(
    {
        "169.254.169.254/32": "the cloud metadata service (AWS, GCP, Azure, OpenStack)",
        "fd00:ec2::254/128": "AWS's IPv6 metadata service",
        "100.100.100.200/32": "Alibaba Cloud's metadata service",
        "168.63.129.16/32": "Azure's WireServer",
        "192.0.0.192/32": "Oracle Cloud's metadata service",
    }
)
REFUSED = networks(
    {
        "0.0.0.0/8": "'this network'",
        "169.254.0.0/16": "IPv4 link-local",
        "192.0.0.0/24": "IETF protocol assignments",
        "192.0.2.0/24": "documentation (TEST-NET-1)",
        "192.88.99.0/24": "the deprecated 6to4 relay anycast",
        "198.51.100.0/24": "documentation (TEST-NET-2)",
        "203.0.113.0/24": "documentation (TEST-NET-3)",
        "224.0.0.0/4": "IPv4 multicast",
        "240.0.0.0/4": "reserved IPv4 (and broadcast)",
        "::/128": "the unspecified IPv6 address",
        "64:ff9b:1::/48": "local-use NAT64 (RFC 8215), which may translate to any internal address",
        "64:ff9b::/32": "NAT64 outside its /96 well-known prefix (RFC 6052 forms whose embedding is unknowable)",
        "100::/64": "IPv6 discard-only",
        "2001::/23": "IETF protocol assignments (Teredo included)",
        "2001:db8::/32": "IPv6 documentation",
        "3fff::/20": "IPv6 documentation",
        "5f00::/16": "SRv6 segment identifiers",
        "fe80::/10": "IPv6 link-local",
        "fec0::/10": "the deprecated IPv6 site-local range",
        "ff00::/8": "IPv6 multicast",
    }
)
PRIVATE = networks(
    {
        "10.0.0.0/8": "private (RFC 1918)",
        "100.64.0.0/10": "shared address space (carrier-grade NAT)",
        "127.0.0.0/8": "loopback",
        "172.16.0.0/12": "private (RFC 1918)",
        "192.168.0.0/16": "private (RFC 1918)",
        "198.18.0.0/15": "benchmarking",
        "::1/128": "IPv6 loopback",
        "fc00::/7": "IPv6 unique-local",
    }
)
# IPv6 ranges whose low 32 bits are an IPv4 address, judged as that address (::/128 and ::1 are ruled on first).
CARRY_LOW_IPV4 = networks(
    {
        "::ffff:0:0/96": "IPv4-mapped",
        "::ffff:0:0:0/96": "IPv4-translated (SIIT)",
        "64:ff9b::/96": "NAT64, well-known prefix",
        "::/96": "IPv4-compatible (deprecated)",
    }
)
SIXTO4 = ipaddress.ip_network("2002::/16")  # the IPv4 address is bits 16-47
GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


@dataclass(frozen=True)
class Verdict:
    kind: str  # "public", "private" or "refused"
    why: str  # what the address is, for the error message

    def allows(self, allow_private: bool) -> bool:
        return self.kind == "public" or (allow_private and self.kind == "private")


def first_match(address: Address, table) -> str | None:
    return next((why for net, why in table if address.version == net.version and address in net), None)


def carried_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    if address in SIXTO4:
        return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF), "6to4"
    form = first_match(address, CARRY_LOW_IPV4)
    return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), form) if form else None


def classify(address: Address) -> Verdict:
    """The policy's verdict on one address."""
    if why := first_match(address, METADATA):
        return Verdict("refused", why)
    if why := first_match(address, PRIVATE):
        return Verdict("private", why)
    carried = carried_ipv4(address) if address.version == 6 else None
    if carried:
        inner = classify(carried[0])
        return Verdict(inner.kind, f"{carried[1]} {carried[0]}: {inner.why}")
    if why := first_match(address, REFUSED):
        return Verdict("refused", why)
    if address.version == 6 and address not in GLOBAL_UNICAST:
        return Verdict("refused", "outside IPv6 global unicast (2000::/3)")
    return Verdict("public", "public")
