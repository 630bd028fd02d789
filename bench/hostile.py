"""The service under the worst requests its limits allow: memory, CPU, and how long hostile servers hold a fetch.

    python -m bench.hostile [--bundle artifacts/bundle] [--variant float32]

1. Peak resident memory (VmHWM) of the local server, a fresh process per
   case, after one `urls` request of MAX_URLS images that each sit just
   inside the decoding budget (or just outside it), served from 127.0.0.1;
   and the server's CPU seconds (user + system, /proc) for one of them.
2. Seconds from request to the 504 for servers that drip their status line,
   repeat `100 Continue`, or send trailers without end, at the default
   FETCH_TIMEOUT: the deadline holds whatever the server does.
"""

import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

from bench.common import median_ms, parser, python_for_serving, rss_mb, timed
from bench.results import Field, Table, model_of, record
from harness.inputs import (
    JPEG_METADATA,
    chunk_flood,
    encode,
    exif_block,
    gif_extension_flood,
    marker_flood,
    noise,
    non_interleaved_jpeg,
    png_bomb,
    png_metadata,
    png_with_raw_profile,
    progressive_bomb,
    rle8_bmp,
    scan_flood,
    with_exif,
    with_jpeg_metadata,
    with_png_metadata,
)
from harness.servers import file_server, image_server, local_server
from lambda_fn import settings, structure

INVOKE = "/2015-03-31/functions/function/invocations"
DEFAULTS = settings.load({})


def progressive_at_budget() -> tuple[str, bytes]:
    """A progressive 4:4:4 JPEG whose coefficients just fit the budget, of noise (the slowest to entropy-decode)
    at the quality that keeps it under MAX_IMAGE_BYTES, its last scan repeated up to MAX_JPEG_SCANS."""
    side = int((DEFAULTS.max_decoded_bytes / (3 * 64 * structure.COEFFICIENT_BYTES)) ** 0.5) * 8
    image = noise((side, side))
    for quality in (40, 20, 10, 5):
        jpeg = encode(image, "JPEG", progressive=True, subsampling=0, quality=quality)
        if len(jpeg) < DEFAULTS.fetch.max_bytes // 2:
            break
    last = jpeg.rindex(b"\xff\xda")
    room = (DEFAULTS.fetch.max_bytes - len(jpeg)) // (len(jpeg) - 2 - last)
    repeats = max(0, min(structure.MAX_JPEG_SCANS - jpeg.count(b"\xff\xda"), room))
    data = jpeg[:last] + jpeg[last:-2] * (repeats + 1) + b"\xff\xd9"
    scans = data.count(b"\xff\xda")
    return f"progressive JPEG {side}x{side} 4:4:4 noise q{quality}, {scans} scans", data


def cases(folder: Path) -> dict[str, bytes]:
    """One file per case, each the worst of its kind within (or just past) the limits."""
    side = int((DEFAULTS.max_decoded_bytes // 4) ** 0.5)  # a square image exactly at the budget
    photo = folder / "photo.jpg"
    Image.new("RGB", (6000, 4000), (120, 60, 30)).save(photo, quality=80)
    gain_map_photo = folder / "photo.mpo"  # a JPEG with an MPF index, as phones write: Pillow opens it as MPO
    Image.new("RGB", (6000, 4000), (120, 60, 30)).save(
        gain_map_photo, "MPO", save_all=True, append_images=[Image.new("RGB", (1500, 1000))], quality=80
    )
    progressive_name, progressive = progressive_at_budget()
    small = noise((640, 480))
    return {
        f"RGBA PNG {side}x{side} (at the budget; the costliest mode to convert)": png_bomb(side, side, rgba=True),
        f"1-bit PNG {side}x{side} (at the budget; expands 32x to RGB)": png_bomb(side, side),
        "JPEG 6000x4000 (over the budget: decoded at 1/2)": photo.read_bytes(),
        "MPO 6000x4000 (a JPEG with an MPF index: decoded reduced, as its JPEG)": gain_map_photo.read_bytes(),
        f"{progressive_name} (at the coefficient budget)": progressive,
        "RGBA PNG 6300x6300 (the review's; refused from its header)": png_bomb(6300, 6300, rgba=True),
        "PNG 1x30000 (refused: aspect)": png_bomb(1, 30_000),
        "progressive CMYK JPEG 13376x13376 (the review's; refused: coefficients)": progressive_bomb(13376, 13376),
        "progressive JPEG of 16,000 scans (the review's kind; refused: scans)": scan_flood(16_000),
        "JPEG behind 2.5 M empty APP15 markers (the review's; refused: segments)": marker_flood(2_500_000),
        "PNG of 800,000 private chunks (the review's; refused: chunks)": chunk_flood(800_000),
        "RLE8 BMP 4000x4000 (refused: Pillow's Python decoder)": rle8_bmp(4000, 4000),
        # the third review's
        "baseline CMYK JPEG 13376x13376, a scan per component (refused: coefficients)": non_interleaved_jpeg(
            13376, 13376, 4
        ),
        "baseline JPEG 8000x8000, one scan of 1 of its 3 components (refused: coefficients)": one_scan_of_three(),
        "PNG whose eXIf holds 1,000,000 RATIONALs (classified: only the Orientation is read)": with_exif(
            small, "PNG", exif_block(6, rationals=1_000_000)
        ),
        "WebP whose EXIF holds 1,000,000 RATIONALs (classified: only the Orientation is read)": with_exif(
            small, "WEBP", exif_block(6, rationals=1_000_000)
        ),
        "PNG with a zTXt raw EXIF profile of 50,000 RATIONALs (classified)": png_with_raw_profile(
            small, exif_block(6, rationals=50_000)
        ),
        "WebP whose EXIF has no TIFF header (classified as stored; was a 500)": with_exif(
            small, "WEBP", b"Exif\x00\x00not a TIFF header"
        ),
        "GIF behind 3.3 M empty extension blocks (refused: extensions)": gif_extension_flood(3_300_000),
        # the fourth review's
        "JPEG 64x32 with 4.4 MB of EXIF over 70 APP1 segments (refused: metadata parsed at open)": with_jpeg_metadata(
            encode(noise((64, 32)), "JPEG"), JPEG_METADATA["exif"](70, 65_000)
        ),
        "PNG of 4,000 iCCP chunks, each inflating to 1 MB (refused: metadata inflated at open)": with_png_metadata(
            encode(noise((64, 64)), "PNG"), png_metadata(b"iCCP", 4000)
        ),
    }


def one_scan_of_three() -> bytes:
    """A baseline JPEG whose only scan holds one of the frame's three components: libjpeg buffers them all."""
    data = non_interleaved_jpeg(8000, 8000, 3)
    return data[: data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)] + b"\xff\xd9"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MEMORY = [
    Field("case", "one urls request of 10 of these"),
    Field("bytes", "bytes", "bytes"),
    Field("rss_before_mb", "RSS before (MB)", "MB"),
    Field("peak_rss_mb", "peak RSS (MB)", "MB"),
    Field("cpu_s", "CPU s (one)", "s"),
    Field("answers", "answers"),
]
DEADLINES = [
    Field("path", "hostile image server", shown="`{}`"),
    Field("seconds", "seconds to the answer", "s"),
    Field("answer", "answer"),
]


def invoke(server: str, event: dict, timeout=120) -> dict:
    request = urllib.request.Request(server + INVOKE, data=json.dumps(event).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def peak_memory(bundle: Path) -> list[tuple[str, int, float, float, float, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k, (name, data) in enumerate(cases(folder).items()):
            urls = []
            for copy in range(DEFAULTS.max_urls):  # distinct names: a batch fetches a repeated URL once
                (folder / f"case{k}-{copy}.img").write_bytes(data)
                urls.append(f"case{k}-{copy}.img")
            with file_server(folder) as files, local_server(bundle, python_for_serving()) as local:
                server, pid = local.url, local.pid
                (folder / "warm.jpg").write_bytes(encode(noise((300, 300)), "JPEG"))
                invoke(server, {"url": f"{files}/warm.jpg"})  # warm: the model has run once
                before, cpu = rss_mb(pid, "VmHWM"), cpu_seconds(pid)
                invoke(server, {"url": f"{files}/{urls[0]}"})
                cpu = cpu_seconds(pid) - cpu
                body = invoke(server, {"urls": [f"{files}/{u}" for u in urls]})
                outcome = sorted({r.get("error", {}).get("code", "classified") for r in body["results"]})
                rows.append((name, len(data), before, rss_mb(pid, "VmHWM"), cpu, ", ".join(outcome)))
    return rows


def deadlines(bundle: Path) -> list[tuple[str, float, str]]:
    rows = []
    with image_server(Path(tempfile.mkdtemp())) as base, local_server(bundle, python_for_serving()) as local:
        server = local.url
        for path in ("/drip-status", "/continue-flood", "/endless-trailers?pause=0.01"):
            started = time.perf_counter()
            body = invoke(server, {"url": base + path})
            rows.append((path, time.perf_counter() - started, body["error"]["code"]))
    return rows


def main(argv=None):
    args = parser(__doc__, one_variant=True).parse_args(argv)
    bundle = args.bundle / args.variant
    memory = Table(
        "memory",
        MEMORY,
        [
            {"case": name, "bytes": size, "rss_before_mb": round(before), "peak_rss_mb": round(after)}
            | {"cpu_s": round(cpu, 2), "answers": outcome}
            for name, size, before, after, cpu, outcome in peak_memory(bundle)
        ],
        "Memory and CPU: a fresh local server per case",
    )
    slow = Table(
        "deadlines",
        DEADLINES,
        [{"path": path, "seconds": round(seconds, 2), "answer": code} for path, seconds, code in deadlines(bundle)],
        "Deadlines: servers that never finish",
    )
    photo = encode(noise((800, 600)), "JPEG", quality=90)
    check = timed(structure.check_structure, photo, DEFAULTS.max_decoded_bytes, repeat=200)
    notes = [
        f"limits: MAX_URLS={DEFAULTS.max_urls}, MAX_DECODED_BYTES={DEFAULTS.max_decoded_bytes}, "
        f"FETCH_TIMEOUT={DEFAULTS.fetch.total_timeout:g} s",
        f"the structure check on an ordinary {len(photo)}-byte 800x600 JPEG takes {median_ms(check)} ms (median of "
        "200): what the decoding bounds add to a normal request",
    ]
    title = "Hostile input: decoder bombs within the limits, servers that never finish"
    record(__spec__.name, argv, title, [memory, slow], notes, model_of(bundle))


if __name__ == "__main__":
    main()
