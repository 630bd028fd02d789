"""A real S3 server on 127.0.0.1 for the tests and the benchmarks: Ceph's radosgw, from Debian's packages.

Debian 12 ships Ceph 16.2 (Pacific), whose radosgw has no backend without a cluster, so this starts the
smallest cluster there is: one monitor and one OSD keeping its objects in memory (memstore), no
authentication inside the cluster, pools of one copy; then radosgw on a free port, and an S3 user with keys
(radosgw-admin). Everything lives in a temporary folder and is stopped when the block ends: no process is
left behind, even when start-up fails. What each piece is waiting for, and what it printed, goes into the
error when it does not come up in time.

Facts that this depends on (found by trying): Pacific's radosgw hangs at start unless the monitor's client
connections use `ms mon client mode = crc`; a short `paxos propose interval` brings start-up from about 13 s
to about 2 s; `rgw dns name` is left unset so that buckets are addressed by path (http://host:port/bucket/key),
as boto3 does for an endpoint given by address.
"""

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.containers import free_port
from harness.servers import Quiet, reply, serving

PROGRAMS = {  # what runs, and the Debian package it comes from
    "ceph-mon": "ceph-mon",
    "ceph-osd": "ceph-osd",
    "monmaptool": "ceph-base",
    "ceph": "ceph-common",
    "radosgw": "radosgw",
    "radosgw-admin": "radosgw",
}
PACKAGES = ("ceph-mon", "ceph-osd", "radosgw")  # tests/system-packages.sh installs these (the rest come with them)
START_SECONDS = 60  # each step's wait; it takes about 2 s here, minutes only when something is wrong
STOP_SECONDS = 10  # after SIGTERM, before SIGKILL
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies (Linux)
TEST_BUCKET = "catalog"  # the tests' deployment reads this bucket alone (CATALOG_BUCKET)
REGION = "us-east-1"  # radosgw's default zone group answers to any region; boto3 signs with this one


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    region: str = REGION

    def environment(self) -> dict[str, str]:
        """What points boto3 (>= 1.28) at this server, as it would be pointed at AWS: variables, no code."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self):
        """A boto3 S3 client for the test's own puts and gets."""
        import boto3  # the serving tests' environment has it; only what uses S3 imports it

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )


def missing_programs() -> list[str]:
    """The programs that are not installed, each with its package."""
    return [f"{name} ({package})" for name, package in PROGRAMS.items() if shutil.which(name) is None]


def config(root: Path, mon_port: int, rgw_port: int) -> str:
    return f"""[global]
fsid = {uuid.uuid4()}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
ms mon client mode = crc
ms bind msgr1 = false
paxos propose interval = 0.05
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd objectstore = memstore
memstore device bytes = {1 << 30}
osd crush chooseleaf type = 0
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
keyring = {root}/keyring
err to stderr = true
log to stderr = false

[mon.a]
mon data = {root}/mon
mon addr = v2:127.0.0.1:{mon_port}

[osd.0]
osd data = {root}/osd

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
rgw enable usage log = false
"""


def own_group_dying_with_parent() -> None:
    """In the daemon before it starts: a process group of its own (stop() signals it whole), and SIGKILL when
    the process that started it dies, so that a test run killed before its teardown leaves no daemon behind."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Cluster:
    """The processes started so far, all stopped by stop(), and the output of each step for the errors."""

    def __init__(self, root: Path):
        self.root, self.conf = root, root / "ceph.conf"
        self.processes: dict[str, subprocess.Popen] = {}

    def run(self, *command: str, seconds: float = START_SECONDS) -> str:
        """A one-shot command against the cluster; its output, or an error that shows it."""
        try:
            done = subprocess.run(
                [*command, "-c", str(self.conf)], capture_output=True, text=True, timeout=seconds, cwd=self.root
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{' '.join(command)} did not finish within {seconds:g} s{self.logs()}") from None
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}{self.logs()}")
        return done.stdout

    def start(self, name: str, *command: str) -> None:
        """A daemon in the foreground (so it is ours to stop), in its own process group."""
        log = (self.root / "log" / f"{name}.out").open("w")
        self.processes[name] = subprocess.Popen(
            [*command, "-f", "-c", str(self.conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            preexec_fn=own_group_dying_with_parent,
        )
        log.close()

    def wait(self, what: str, ready, seconds: float = START_SECONDS) -> None:
        """Until ready() is true, or fail saying what did not come up; fails at once if a daemon died."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}) while waiting for {what}{self.logs()}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not happen within {seconds:g} s{self.logs()}")

    def logs(self) -> str:
        """The tail of every log, for an error message."""
        tails = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"\n--- {path.name} ---\n" + "\n".join(lines))
        return "".join(tails)

    def stop(self) -> None:
        """SIGTERM to each daemon's group, newest first; SIGKILL to what is still there after STOP_SECONDS."""
        for process in reversed(list(self.processes.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def answers_http(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # an S3 error answer is an answer
    except OSError:
        return False
    return True


def osd_is_up(cluster: Cluster) -> bool:
    try:
        return '"num_up_osds":1' in cluster.run("ceph", "osd", "stat", "--format", "json", seconds=5).replace(" ", "")
    except RuntimeError:
        return False


def start_cluster(cluster: Cluster, mon_port: int, rgw_port: int) -> S3Server:
    root = cluster.root
    for folder in ("mon", "osd", "rgw", "run", "log"):
        (root / folder).mkdir()
    cluster.conf.write_text(config(root, mon_port, rgw_port))
    (root / "keyring").write_text("")  # no keys (authentication is off), but the tools want the file
    fsid = cluster.conf.read_text().split("fsid = ")[1].split()[0]
    monmap = str(root / "monmap")
    cluster.run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", monmap)
    cluster.run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
    cluster.start("mon.a", "ceph-mon", "-i", "a")
    osd_id = cluster.run("ceph", "osd", "create").strip()  # waits for the monitor to form its quorum of one
    cluster.run("ceph-osd", "-i", osd_id, "--mkfs")
    cluster.start(f"osd.{osd_id}", "ceph-osd", "-i", osd_id)
    cluster.wait("the OSD to join the cluster", lambda: osd_is_up(cluster))
    cluster.start("rgw", "radosgw", "-n", "client.rgw")
    endpoint = f"http://127.0.0.1:{rgw_port}"
    cluster.wait(f"radosgw to answer on {endpoint}", lambda: answers_http(endpoint))
    access_key, secret_key = secrets.token_hex(10).upper(), secrets.token_hex(20)
    cluster.run(
        "radosgw-admin", "user", "create", "--uid", "tests", "--display-name", "tests",
        "--access-key", access_key, "--secret-key", secret_key,
    )  # fmt: skip
    return S3Server(endpoint, access_key, secret_key)


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """radosgw on a free port of 127.0.0.1 for as long as the block runs (the caller checks missing_programs())."""
    with tempfile.TemporaryDirectory(prefix="radosgw-") as folder:
        cluster = Cluster(Path(folder))
        try:
            yield start_cluster(cluster, free_port(), free_port())
        finally:
            cluster.stop()


class MisbehavingS3(Quiet):
    """An S3 endpoint that answers every GetObject as `mode` says: what radosgw cannot be made to do on cue.
    throttle: 503 SlowDown, as S3 answers over a prefix's request rate; error: 500 InternalError;
    drip: a whole photo's Content-Length, then a byte every 0.2 s; huge: a Content-Length of 1 GB (its body
    never sent: the function must refuse by the header alone)."""

    mode = "throttle"

    def do_GET(self):
        if self.mode in ("throttle", "error"):
            code, status = ("SlowDown", 503) if self.mode == "throttle" else ("InternalError", 500)
            body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()
            return reply(self, status, body, "application/xml")
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(1 << 30 if self.mode == "huge" else 50_000))
        self.end_headers()
        if self.mode == "drip":
            for _ in range(50_000):
                self.wfile.write(b"\xff")
                self.wfile.flush()
                time.sleep(0.2)


def misbehaving_s3(mode: str):
    """MisbehavingS3 in this mode on a free port: yields its endpoint."""
    return serving(type("Handler", (MisbehavingS3,), {"mode": mode}))
