"""The service under the worst requests its limits allow: peak memory, and how long hostile servers hold a fetch.

    .venv/bin/python -m bench.hostile [--variant float32]

1. Peak resident memory (VmHWM) of the local server, a fresh process per
   case, after one `urls` request of MAX_URLS images that each sit just
   inside the decoding budget (or just outside it), served from 127.0.0.1.
2. Seconds from request to the 504 for servers that drip their status line,
   repeat `100 Continue`, or send trailers without end, at the default
   FETCH_TIMEOUT: the deadline holds whatever the server does.
"""

import argparse
import json
import tempfile
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from bench.common import BUNDLE, file_server, local_server, machine, rss_mb
from lambda_fn import settings
from tests.lambda_fn.conftest import ImageServer, png_bomb

INVOKE = "/2015-03-31/functions/function/invocations"
DEFAULTS = settings.load({})


def cases(folder: Path) -> dict[str, bytes]:
    """One file per case, each the worst of its kind within (or just past) the limits."""
    side = int((DEFAULTS.max_decoded_bytes // 4) ** 0.5)  # a square image exactly at the budget
    photo = folder / "photo.jpg"
    Image.new("RGB", (6000, 4000), (120, 60, 30)).save(photo, quality=80)
    return {
        f"RGBA PNG {side}x{side} (at the budget; the costliest mode to convert)": png_bomb(side, side, rgba=True),
        f"1-bit PNG {side}x{side} (at the budget; expands 32x to RGB)": png_bomb(side, side),
        "JPEG 6000x4000 (over the budget: decoded at 1/2)": photo.read_bytes(),
        "RGBA PNG 6300x6300 (the review's; refused from its header)": png_bomb(6300, 6300, rgba=True),
        "PNG 1x30000 (refused: aspect)": png_bomb(1, 30_000),
    }


def invoke(server: str, event: dict, timeout=120) -> dict:
    request = urllib.request.Request(server + INVOKE, data=json.dumps(event).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def peak_memory(bundle: Path) -> list[tuple[str, float, float, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k, (name, data) in enumerate(cases(folder).items()):
            urls = []
            for copy in range(DEFAULTS.max_urls):  # distinct names: a batch fetches a repeated URL once
                (folder / f"case{k}-{copy}.img").write_bytes(data)
                urls.append(f"case{k}-{copy}.img")
            with file_server(folder) as files, local_server(bundle) as (server, pid):
                invoke(server, {"url": f"{files}/{urls[0]}"})  # warm: the model has run once
                before = rss_mb(pid, "VmHWM")
                body = invoke(server, {"urls": [f"{files}/{u}" for u in urls]})
                outcome = sorted({r.get("error", {}).get("code", "classified") for r in body["results"]})
                rows.append((name, before, rss_mb(pid, "VmHWM"), ", ".join(outcome)))
    return rows


def deadlines(bundle: Path) -> list[tuple[str, float, str]]:
    handler = type("Handler", (ImageServer,), {"root": Path(tempfile.mkdtemp())})
    hostile = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    hostile.daemon_threads = True
    threading.Thread(target=hostile.serve_forever, daemon=True).start()
    base, rows = f"http://127.0.0.1:{hostile.server_port}", []
    with local_server(bundle) as (server, _):
        for path in ("/drip-status", "/continue-flood", "/endless-trailers?pause=0.01"):
            started = time.perf_counter()
            body = invoke(server, {"url": base + path})
            rows.append((path, time.perf_counter() - started, body["error"]["code"]))
    hostile.shutdown()
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="float32")
    args = p.parse_args(argv)
    bundle = BUNDLE / args.variant
    print(
        f"machine: {machine()}; bundle {bundle.name}; MAX_URLS={DEFAULTS.max_urls}, "
        f"MAX_DECODED_BYTES={DEFAULTS.max_decoded_bytes}, FETCH_TIMEOUT={DEFAULTS.fetch.total_timeout:g} s"
    )
    print("| one urls request of 10 of these | peak RSS before (MB) | peak RSS after (MB) | answers |")
    print("| --- | --- | --- | --- |")
    for name, before, after, outcome in peak_memory(bundle):
        print(f"| {name} | {before:.0f} | **{after:.0f}** | {outcome} |")
    print()
    print("| hostile image server | seconds to the answer | answer |")
    print("| --- | --- | --- |")
    for path, seconds, code in deadlines(bundle):
        print(f"| `{path}` | {seconds:.2f} | {code} |")


if __name__ == "__main__":
    main()
