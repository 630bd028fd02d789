"""The address policy, from a table, on every interpreter the project runs on (their ipaddress tables differ)."""

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import REPO
from harness.needs import missing
from lambda_fn.addresses import classify

# (address, verdict): refused is never fetched; private only with ALLOW_PRIVATE_URLS=true
TABLE = [
    ("8.8.8.8", "public"),
    ("2606:4700:4700::1111", "public"),
    ("10.0.0.1", "private"),
    ("100.64.0.1", "private"),
    ("127.0.0.1", "private"),
    ("::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.169.254", "refused"),  # metadata, IPv4
    ("fd00:ec2::254", "refused"),  # AWS's IPv6 metadata, inside unique-local: refused even with the opt-in
    ("100.100.100.200", "refused"),  # Alibaba's metadata, inside shared address space
    ("168.63.129.16", "refused"),  # Azure's WireServer, a public-looking address
    ("192.0.0.192", "refused"),  # Oracle's metadata
    ("169.254.1.1", "refused"),
    ("fe80::1", "refused"),
    ("224.0.0.1", "refused"),
    ("0.0.0.0", "refused"),
    ("::", "refused"),
    ("255.255.255.255", "refused"),
    ("192.0.2.1", "refused"),
    ("2001:db8::1", "refused"),
    ("fec0::1", "refused"),
    ("::ffff:127.0.0.1", "private"),  # IPv4-mapped
    ("::ffff:a9fe:a9fe", "refused"),  # mapped metadata
    ("::ffff:0:a9fe:a9fe", "refused"),  # SIIT (::ffff:0:0:0/96) of the metadata address
    ("::ffff:0:808:808", "public"),  # SIIT of 8.8.8.8
    ("::a00:1", "private"),  # IPv4-compatible 10.0.0.1
    ("64:ff9b::a00:1", "private"),  # NAT64 /96 of 10.0.0.1
    ("64:ff9b::808:808", "public"),  # NAT64 /96 of 8.8.8.8
    ("64:ff9b::a9fe:a9fe", "refused"),  # NAT64 /96 of the metadata address
    ("64:ff9b:a9fe:a9fe::", "refused"),  # RFC 6052 /32 form of the metadata address
    ("64:ff9b:a9:fea9:fe::", "refused"),  # /40 form
    ("64:ff9b:0:a9fe:a9:fe00::", "refused"),  # /48 form
    ("64:ff9b:0:a9:fe:a9fe::", "refused"),  # /56 form
    ("64:ff9b:0:0:a9:fea9:fe00:0", "refused"),  # /64 form
    ("64:ff9b:1:a9fe:a9:fe00::", "refused"),  # local-use 64:ff9b:1::/48 (Python 3.13 and 3.11 disagree on it)
    ("64:ff9b:1::808:808", "refused"),  # local-use, whatever it carries
    ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
    ("2002:a9fe:a9fe::1", "refused"),  # 6to4 of the metadata address
    ("2002:808:808::1", "public"),  # 6to4 of 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "refused"),  # Teredo
    ("4000::1", "refused"),  # outside global unicast
]


@pytest.mark.parametrize("address, verdict", TABLE)
def test_the_policy_gives_the_table(address, verdict):
    assert classify(ipaddress.ip_address(address)).kind == verdict


def test_only_public_addresses_are_fetched_without_the_opt_in_and_refused_ones_never():
    for address, verdict in TABLE:
        ruling = classify(ipaddress.ip_address(address))
        assert ruling.allows(allow_private=False) is (verdict == "public"), address
        assert ruling.allows(allow_private=True) is (verdict != "refused"), address


def interpreters() -> list[str]:
    """This one, the Lambda image's CPython 3.12 and a 3.13, where this machine has them (pyenv's too)."""
    found = [sys.executable]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for minor in ("3.11", "3.12", "3.13"):
        candidates = [f"python{minor}", *sorted(str(p) for p in pyenv.glob(f"{minor}*/bin/python{minor}"))]
        for candidate in candidates:
            if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
                found.append(candidate)
                break
        else:
            if minor == "3.12":
                missing("no CPython 3.12 (the Lambda image's) to check the address policy on")
    return found


def test_every_interpreter_gives_the_same_verdicts():
    script = (
        "import ipaddress, json, sys; from lambda_fn.addresses import classify; "
        "print(json.dumps([classify(ipaddress.ip_address(a)).kind for a in json.loads(sys.argv[1])]))"
    )
    addresses = [address for address, _ in TABLE]
    for python in interpreters():
        ran = subprocess.run(
            [python, "-I", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); {script}", json.dumps(addresses)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(ran.stdout) == [verdict for _, verdict in TABLE], python
