"""Audio analysis for one file: decode with soundfile, measure with numpy and pyloudnorm.

Everything here is a pure function of (name, bytes, options) so a worker thread or
process can run it. librosa is deliberately not used: its first call JIT-compiles
for tens of seconds. The optional speech-to-text is pocketsphinx's bundled en-us
model, a rough offline preview, never a transcript of record.
"""
from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from streamlit_app.media_errors import (
    BadFileError,
    check_extension,
    check_not_empty,
    describe_content,
)
from utils.decode_guard import LimitExceeded, check_audio

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
# What each extension promises, in describe_content's words.
_EXPECTED_CONTENT = {
    ".wav": "WAV audio",
    ".flac": "FLAC audio",
    ".ogg": "OGG audio",
    ".oga": "OGG audio",
    ".opus": "OGG audio",
    ".mp3": "MP3 audio",
    ".aif": "AIFF audio",
    ".aiff": "AIFF audio",
}
_AUDIO_CONTENT = set(_EXPECTED_CONTENT.values())

# Longer files are measured on their first five minutes (duration still reports the whole file):
# a worker holds roughly 16 bytes per sample and channel while measuring, ~420 MB for 5 min of 44.1 kHz stereo.
# The float32 samples decoded are also capped by MAX_DECODED_MB (utils.decode_guard.check_audio): hi-res
# recordings are measured on as much of their start as fits, and analysed_s says how much.
DEFAULT_MAX_SECONDS = 300.0
DEFAULT_TRANSCRIBE_SECONDS = 30.0  # pocketsphinx runs ~0.3x real time: keep previews short
SILENCE_DBFS = -50.0
CLIP_LEVEL = 0.999
LUFS_BLOCK_SECONDS = 0.4  # pyloudnorm's gating block: shorter clips have no loudness
# Chart previews are computed in the worker from the samples it already decoded, so a page never decodes again.
PREVIEW_SECONDS = 120.0  # charts look at the first two minutes
WAVEFORM_POINTS = 1000
SPECTROGRAM_FRAMES = 120
SPECTROGRAM_BINS = 64
SPECTROGRAM_RANGE_DB = 80.0
SPECTROGRAM_WINDOW = 1024
# Columns too big for a results table; pages draw them as charts.
NON_TABLE_KEYS = ("chart_preview",)
TRANSCRIPT_NOTE = (
    "Rough preview from pocketsphinx's offline en-us model: expect many wrong words; "
    "not a transcript of record."
)


@dataclass(frozen=True)
class DecodedAudio:
    """Samples (frames x channels, float32 in [-1, 1]) and what the container says about them."""

    samples: np.ndarray
    sample_rate: int
    channels: int
    container: str
    subtype: str
    declared_frames: int

    @property
    def duration_s(self) -> float:
        return self.declared_frames / self.sample_rate if self.sample_rate else 0.0

    def mono(self) -> np.ndarray:
        """Channel average as float32 (half the memory of float64; plenty for these measures)."""
        if self.channels == 1:
            return self.samples[:, 0]
        return self.samples.mean(axis=1, dtype=np.float32)


# ---------------------------------------------------------------- decoding


def _check_content(name: str, data: bytes, ext: str) -> str:
    """Return what the bytes really are, raising when they are not audio at all."""
    expected = _EXPECTED_CONTENT[ext]
    actual = describe_content(data)
    label = ext.lstrip(".").upper()
    if actual is None:
        raise BadFileError(name, f"not a {label} file: content is not a recognised audio format")
    if actual not in _AUDIO_CONTENT:
        raise BadFileError(name, f"not a {label} file: content looks like {actual}")
    return actual


def _check_wav_length(name: str, data: bytes) -> None:
    """Compare the WAV data chunk's declared size with the bytes present (libsndfile reads short files silently)."""
    pos = 12
    block_align = 0
    while pos + 8 <= len(data):
        chunk_id = data[pos:pos + 4]
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk_id == b"fmt " and pos + 22 <= len(data):
            block_align = int.from_bytes(data[pos + 20:pos + 22], "little")
        if chunk_id == b"data":
            if size in (0, 0xFFFFFFFF) or not block_align:
                return  # streaming writers leave the size open; libsndfile copes
            available = len(data) - (pos + 8)
            if size > available + block_align:
                raise BadFileError(
                    name,
                    f"truncated WAV: header says {size // block_align} frames, "
                    f"file holds {available // block_align}",
                )
            return
        pos += 8 + size + (size & 1)
    raise BadFileError(name, "truncated WAV: no audio data chunk found")


def _libsndfile_reason(exc: Exception) -> str:
    """libsndfile's own words, without the '<_io.BytesIO object at 0x..>' noise."""
    text = getattr(exc, "error_string", None) or str(exc)
    text = text.split(": ", 1)[-1] if "BytesIO" in text else text
    return text.replace("Error : ", "").strip().rstrip(".")


def decode_audio(name: str, data: bytes, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> DecodedAudio:
    """Decode WAV/FLAC/OGG/MP3/AIFF bytes, raising BadFileError with the reason when they are broken."""
    check_not_empty(name, data)
    ext = check_extension(name, AUDIO_EXTENSIONS, "audio")
    actual = _check_content(name, data, ext)
    if actual == "WAV audio":
        _check_wav_length(name, data)
    label = actual.split()[0]
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            rate = int(handle.samplerate)
            declared = int(handle.frames)
            # Before a sample is decoded: the frames that fit MAX_DECODED_MB, or LimitExceeded.
            limit = check_audio(declared, int(handle.channels), rate, max_seconds)
            samples = handle.read(frames=limit, dtype="float32", always_2d=True)
            container, subtype = handle.format, handle.subtype
    except LimitExceeded as exc:
        raise BadFileError(name, str(exc)) from exc
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise BadFileError(name, f"cannot decode {label} (truncated or corrupt): {_libsndfile_reason(exc)}") from exc
    if samples.shape[0] == 0:
        raise BadFileError(name, f"no audio: the {label} file holds 0 frames")
    wanted = declared if limit < 0 else min(declared, limit)
    # Compressed streams may be a frame or two short of their header; more means lost data.
    if wanted - samples.shape[0] > max(2304, wanted // 100):
        raise BadFileError(
            name, f"truncated {label}: header says {declared} frames, decoded {samples.shape[0]}"
        )
    return DecodedAudio(samples, rate, int(samples.shape[1]), container, subtype, max(declared, samples.shape[0]))


# ---------------------------------------------------------------- measurements


def _dbfs(value: float) -> float | None:
    """Decibels relative to full scale; None for digital silence (there is no finite value)."""
    return round(20.0 * float(np.log10(value)), 2) if value > 0 else None


def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Non-copying view of x as overlapping frames (rows)."""
    if len(x) < length:
        x = np.pad(x, (0, length - len(x)))
    count = 1 + (len(x) - length) // hop
    return np.lib.stride_tricks.as_strided(
        x, shape=(count, length), strides=(x.strides[0] * hop, x.strides[0]), writeable=False
    )


def silence_ratio(mono: np.ndarray, rate: int, threshold_dbfs: float = SILENCE_DBFS) -> float:
    """Share of 20 ms frames quieter than the threshold: tells gaps and dead air apart from content."""
    length = max(1, int(0.02 * rate))
    frames = _frames(mono, length, length)
    rms = np.sqrt(np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / length)
    limit = 10.0 ** (threshold_dbfs / 20.0)
    return round(float(np.mean(rms < limit)), 4)


def spectral_centroid(mono: np.ndarray, rate: int, max_frames: int = 256) -> float | None:
    """Energy-weighted mean frequency (Hz): a brightness measure; None for silence."""
    length = 2048
    frames = _frames(mono, length, length)
    if len(frames) > max_frames:
        frames = frames[np.linspace(0, len(frames) - 1, max_frames).astype(int)]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(length), axis=1))
    total = spectrum.sum()
    if total <= 0:
        return None
    freqs = np.fft.rfftfreq(length, 1.0 / rate)
    return round(float((spectrum * freqs).sum() / total), 1)


def clipping_ratio(samples: np.ndarray, level: float = CLIP_LEVEL) -> float:
    """Share of samples at full scale: many in a row mean the recording was clipped."""
    clipped = np.count_nonzero(samples >= level) + np.count_nonzero(samples <= -level)
    return round(clipped / samples.size, 5)


def zero_crossing_rate(mono: np.ndarray) -> float:
    """Share of neighbouring samples that change sign: high for noise and hiss, low for hum."""
    if len(mono) < 2:
        return 0.0
    signs = np.signbit(mono)
    return round(float(np.mean(signs[1:] != signs[:-1])), 5)


def _first_strong_peak(values: np.ndarray, start: int, stop: int, share: float = 0.9) -> int | None:
    """Index of the first local maximum in [start, stop) reaching share x the range's maximum.

    Taking the first strong peak rather than the highest avoids octave (or double-tempo) errors.
    """
    window = values[start:stop]
    if len(window) < 3:
        return None
    inner = window[1:-1]
    peaks = np.nonzero((inner >= window[:-2]) & (inner > window[2:]))[0] + 1
    if len(peaks) == 0:
        return None
    best = window[peaks].max()
    if best <= 0:
        return None  # no positive correlation anywhere in range: nothing repeats
    strong = peaks[window[peaks] >= share * best]
    return int(start + strong[0])


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    """Biased autocorrelation normalised to r[0] = 1 (FFT-based, so long frames stay cheap)."""
    x = x - x.mean()
    size = 1 << (2 * len(x) - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    corr = np.fft.irfft(spectrum * np.conj(spectrum), size)[: len(x)]
    return corr / corr[0] if corr[0] > 0 else corr


def pitch_estimate(mono: np.ndarray, rate: int, fmin: float = 50.0, fmax: float = 1000.0) -> float | None:
    """Median fundamental (Hz) over the loudest 40 ms frames by autocorrelation; None when unpitched."""
    length = int(0.04 * rate)
    if len(mono) < length or length < 8:
        return None
    frames = _frames(mono, length, length)
    energy = np.einsum("ij,ij->i", frames, frames)
    if energy.max() <= 0:
        return None
    loudest = np.argsort(energy)[::-1][:16]
    loudest = loudest[energy[loudest] > 0.1 * energy.max()]
    low, high = max(2, int(rate / fmax)), min(length - 2, int(rate / fmin) + 1)
    found = []
    for index in loudest:
        corr = _autocorrelation(frames[index])
        lag = _first_strong_peak(corr, low, high)
        if lag is None or corr[lag] < 0.5:
            continue
        a, b, c = corr[lag - 1], corr[lag], corr[lag + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom else 0.0
        found.append(rate / (lag + shift))
    if len(found) < max(1, len(loudest) // 3):
        return None
    return round(float(np.median(found)), 1)


def tempo_estimate(mono: np.ndarray, rate: int, bpm_min: float = 50.0, bpm_max: float = 200.0) -> float | None:
    """Beats per minute from the autocorrelation of an onset envelope; None without a steady beat."""
    hop = max(1, int(0.01 * rate))  # 100 envelope values a second
    if len(mono) < 3 * rate:
        return None
    frames = _frames(mono, 2 * hop, hop)
    energy = np.log1p(1000.0 * np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frames.shape[1])
    onsets = np.maximum(np.diff(energy), 0.0)
    if onsets.max() <= 0:
        return None
    corr = _autocorrelation(onsets)
    low, high = int(6000 / bpm_max), int(6000 / bpm_min) + 1
    lag = _first_strong_peak(corr, low, min(high, len(corr) - 1))
    if lag is None or corr[lag] < 0.3:
        return None
    return round(6000.0 / lag, 1)


def loudness_lufs(samples: np.ndarray, rate: int) -> tuple[float | None, str]:
    """Integrated loudness (ITU-R BS.1770) and a note when it cannot be measured."""
    import pyloudnorm  # imported here: it pulls in scipy, which pages that only list files do not need

    if samples.shape[0] < int(LUFS_BLOCK_SECONDS * rate) + 1:
        return None, f"clip shorter than {LUFS_BLOCK_SECONDS} s: loudness needs one 400 ms block"
    if samples.shape[1] > 5:
        samples = samples.mean(axis=1, keepdims=True)  # BS.1770 weights stop at 5 channels
    value = pyloudnorm.Meter(rate).integrated_loudness(samples)  # float32 in: its working copy stays float32
    if not np.isfinite(value):
        return None, "silent: no loudness above the -70 LUFS gate"
    return round(float(value), 2), ""


# ---------------------------------------------------------------- chart preview


def _b64(values: np.ndarray) -> str:
    return base64.b64encode(values.tobytes()).decode("ascii")


def chart_preview(mono: np.ndarray, rate: int) -> str:
    """A small, JSON-safe waveform envelope and spectrogram of the first PREVIEW_SECONDS (~8 KB).

    Min/max per column as int8 (amplitude x 127); spectrogram in dB as uint8 over the top
    SPECTROGRAM_RANGE_DB below its loudest cell, packed as one JSON string so the row stays flat.
    Pages draw it (media_charts) without decoding.
    """
    clip = mono[: max(1, int(PREVIEW_SECONDS * rate))]
    columns = max(1, min(WAVEFORM_POINTS, len(clip)))
    edges = np.linspace(0, len(clip), columns + 1).astype(int)[:-1]
    lows = np.minimum.reduceat(clip, edges)
    highs = np.maximum.reduceat(clip, edges)
    length = SPECTROGRAM_WINDOW
    padded = clip if len(clip) >= length else np.pad(clip, (0, length - len(clip)))
    count = min(SPECTROGRAM_FRAMES, 1 + (len(padded) - length) // 256)
    starts = np.linspace(0, len(padded) - length, count).astype(int)
    frames = np.stack([padded[s:s + length] for s in starts]) * np.hanning(length).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    bins = power[:, :-1].reshape(len(starts), SPECTROGRAM_BINS, -1).mean(axis=2)
    decibels = 10.0 * np.log10(bins + 1e-12)
    top = float(decibels.max())
    scaled = np.clip((decibels - (top - SPECTROGRAM_RANGE_DB)) / SPECTROGRAM_RANGE_DB * 255.0, 0, 255)
    return json.dumps({
        "rate": rate,
        "samples": int(len(clip)),
        "wave_min": _b64(np.round(np.clip(lows, -1, 1) * 127).astype(np.int8)),
        "wave_max": _b64(np.round(np.clip(highs, -1, 1) * 127).astype(np.int8)),
        "spec_starts": [int(v) for v in starts],
        "spec_db": _b64(np.round(scaled).astype(np.uint8)),
        "spec_top_db": round(top, 2),
    }, separators=(",", ":"))


def preview_arrays(packed: str) -> dict[str, np.ndarray]:
    """The preview's arrays back as numbers: times (s), min, max, spectrogram starts (s), freqs (Hz), dB."""
    preview = json.loads(packed)
    rate = int(preview["rate"])
    lows = np.frombuffer(base64.b64decode(preview["wave_min"]), dtype=np.int8).astype(np.float32) / 127.0
    highs = np.frombuffer(base64.b64decode(preview["wave_max"]), dtype=np.int8).astype(np.float32) / 127.0
    edges = np.linspace(0, int(preview["samples"]), len(lows) + 1).astype(int)[:-1]
    starts = np.asarray(preview["spec_starts"], dtype=np.float32)
    scaled = np.frombuffer(base64.b64decode(preview["spec_db"]), dtype=np.uint8).astype(np.float32)
    top = float(preview["spec_top_db"])
    decibels = (scaled / 255.0 * SPECTROGRAM_RANGE_DB + top - SPECTROGRAM_RANGE_DB).reshape(len(starts), -1)
    freqs = (np.arange(decibels.shape[1]) + 0.5) * (rate / 2) / decibels.shape[1]
    return {"times": (edges / rate).astype(np.float32), "lows": lows, "highs": highs,
            "spec_times": starts / rate, "freqs": freqs.astype(np.float32), "decibels": decibels}


# ---------------------------------------------------------------- speech preview


def _resample(mono: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling through the FFT (cheap for preview lengths, no aliasing)."""
    if rate == target:
        return mono
    size = max(1, int(round(len(mono) * target / rate)))
    spectrum = np.fft.rfft(mono)
    return np.fft.irfft(spectrum[: size // 2 + 1], size) * (size / len(mono))


def transcribe_preview(mono: np.ndarray, rate: int, seconds: float = DEFAULT_TRANSCRIBE_SECONDS) -> str:
    """Words pocketsphinx hears in the first seconds of the clip (rough; en-us only; offline)."""
    from pocketsphinx import Decoder  # the model loads per call: a decoder is stateful, never shared

    clip = mono[: int(seconds * rate)]
    speech = _resample(clip, rate, 16000)
    pcm = (np.clip(speech, -1.0, 1.0) * 32767).astype("<i2")
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr.strip() if hypothesis is not None else ""


# ---------------------------------------------------------------- per-item entry point


def analyse_audio(name: str, data: bytes, options: dict | None = None) -> dict[str, Any]:
    """Measure one audio file into a flat, JSON-serialisable row; BadFileError when it cannot be read.

    Options: transcribe (bool, default False), transcribe_seconds (30), max_seconds (600),
    silence_threshold_dbfs (-50), chart_preview (bool, default True: a small waveform and spectrogram).
    """
    options = options or {}
    max_seconds = options.get("max_seconds", DEFAULT_MAX_SECONDS)
    audio = decode_audio(name, data, max_seconds=max_seconds)
    samples, rate = audio.samples, audio.sample_rate
    mono = audio.mono()
    peak = float(max(samples.max(), -samples.min()))  # no |x| temporary the size of the file
    rms = float(np.sqrt(np.dot(mono, mono) / len(mono)))
    lufs, lufs_note = loudness_lufs(samples, rate)
    row: dict[str, Any] = {
        "name": name,
        "format": audio.container,
        "subtype": audio.subtype,
        "duration_s": round(audio.duration_s, 3),
        "analysed_s": round(samples.shape[0] / rate, 3),
        "sample_rate": rate,
        "channels": audio.channels,
        "peak_dbfs": _dbfs(peak),
        "rms_dbfs": _dbfs(rms),
        "loudness_lufs": lufs,
        "loudness_note": lufs_note,
        "silence_ratio": silence_ratio(mono, rate, options.get("silence_threshold_dbfs", SILENCE_DBFS)),
        "clipping_ratio": clipping_ratio(samples),
        "spectral_centroid_hz": spectral_centroid(mono, rate),
        "zero_crossing_rate": zero_crossing_rate(mono),
        "pitch_hz": pitch_estimate(mono, rate),
        "tempo_bpm": tempo_estimate(mono, rate),
        "size_bytes": len(data),
    }
    if options.get("chart_preview", True):
        row["chart_preview"] = chart_preview(mono, rate)
    if options.get("transcribe"):
        seconds = float(options.get("transcribe_seconds", DEFAULT_TRANSCRIBE_SECONDS))
        row["transcript_preview"] = transcribe_preview(mono, rate, seconds)
        row["transcript_note"] = TRANSCRIPT_NOTE
    return row


def analyse_audio_item(item: tuple) -> dict[str, Any]:
    """One-argument form for the threading manager's map: item is (name, data) or (name, data, options)."""
    name, data, *rest = item
    return analyse_audio(name, data, rest[0] if rest else None)


def warm_up() -> None:
    """Pay the one-off costs (scipy import for pyloudnorm) before timing or serving; a process-pool initializer."""
    loudness_lufs(np.zeros((22050, 1), dtype=np.float32), 22050)
