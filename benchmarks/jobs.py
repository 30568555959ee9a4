"""One benchmark measurement per fresh Python process, so that each codec reports its own peak memory.

    python benchmarks/jobs.py '{"job": "generic", "codec": "xz -9e", "data": "/tmp/set.npy"}'

prints one JSON object on its last stdout line: the job's figures, plus

- ``peak_mib``: peak resident set size of this process over its whole life (Python interpreter, the job's imports
  — torch for bbans —, the data array, the codec's working memory and its output), MiB;
- ``start_mib``: the peak before the job ran (interpreter, imports, data; not the model's weights), MiB.

Jobs (``data`` is a uint8 ``.npy`` of shape (N, 28, 28); times are wall seconds of the codec calls alone):

- ``generic`` ``codec``: a ``bbans.container.classic`` reference tool on the raw bytes (binary data packed 8 values
  per byte);
- ``image`` ``fmt`` ("png" | "webp"): Pillow, one file per image, sizes summed (and the size of one blank image's
  file, the per-file floor of headers and framing);
- ``bbans`` ``model``, ``method``, ``threads``, ``particles``: ``bbans.compress_with_report`` then
  ``bbans.decompress`` with torch limited to ``threads`` threads (``particles`` K > 1: Monte-Carlo bits-back);
- ``model_eval`` ``model``, ``nll_items``, ``nll_samples``, ``threads``: the float model's -ELBO on all items and
  its importance-sampled NLL estimate (Burda et al., "Importance weighted autoencoders", ICLR 2016) on a seeded
  random subset, bits/dim;
- ``one_image``: bytes of every codec above on ``data`` (a single image).

Only the ``bbans``, ``model_eval`` and ``one_image`` jobs import torch.
"""
from __future__ import annotations

import io
import json
import resource
import sys
import time

import numpy as np


def _rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"{what}: the round trip changed the data")


def _is_binary(data: np.ndarray) -> bool:
    return bool(data.size) and int(data.max()) <= 1


def generic_codecs(optional: bool = True) -> dict:
    """name -> (compress, decompress) of the reference tools: gzip, bz2, xz, then (``optional``) zstd and brotli,
    which need the ``bench`` extra (ImportError naming it otherwise)."""
    from bbans.container.classic import REFERENCE_CODECS, optional_reference_codecs

    codecs = (*REFERENCE_CODECS, *(optional_reference_codecs() if optional else ()))
    return {name: (enc, dec) for name, enc, dec in codecs}


def image_encode(image: np.ndarray, fmt: str, binary: bool) -> bytes:
    """One (28, 28) uint8 image as a lossless PNG or WebP file at Pillow's strongest settings.

    Binary images: PNG mode "1" (1 bit per pixel); WebP has no 1-bit mode, so they go in as 8-bit grey 0/255
    (lossless WebP then stores a 2-colour palette)."""
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "png":
        pic = Image.fromarray(image.astype(bool)) if binary else Image.fromarray(image, "L")
        pic.save(buf, "PNG", optimize=True, compress_level=9)
    elif fmt == "webp":
        pic = Image.fromarray(image * np.uint8(255) if binary else image, "L")
        pic.save(buf, "WEBP", lossless=True, quality=100, method=6)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


def image_decode(blob: bytes, binary: bool) -> np.ndarray:
    """Inverse of ``image_encode``: (28, 28) uint8."""
    from PIL import Image

    pic = Image.open(io.BytesIO(blob))
    pic = pic.convert("L") if pic.mode not in ("1", "L") else pic
    out = np.asarray(pic)
    return (out > 0).astype(np.uint8) if binary else out.astype(np.uint8)


def job_generic(data: np.ndarray, codec: str) -> dict:
    from bbans.container.classic import reference_input

    core = generic_codecs(optional=False)
    enc, dec = core[codec] if codec in core else generic_codecs()[codec]
    raw, what = reference_input(data)
    t = time.perf_counter()
    blob = enc(raw)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    back = dec(blob)
    t_dec = time.perf_counter() - t
    return {"bytes": len(blob), "encode_s": t_enc, "decode_s": t_dec, "exact": back == raw, "input": what}


def job_image(data: np.ndarray, fmt: str) -> dict:
    binary = _is_binary(data)
    t = time.perf_counter()
    blobs = [image_encode(im, fmt, binary) for im in data]
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    back = np.stack([image_decode(b, binary) for b in blobs]) if blobs else data[:0]
    t_dec = time.perf_counter() - t
    blank = len(image_encode(np.zeros(data.shape[1:], np.uint8), fmt, binary))  # the per-file floor
    return {"bytes": sum(map(len, blobs)), "encode_s": t_enc, "decode_s": t_dec, "blank_bytes": blank,
            "exact": bool(np.array_equal(back, data))}


def job_bbans(data: np.ndarray, model: str, method: str = "bits-back", threads: int = 1, particles: int = 1) -> dict:
    import torch

    import bbans

    torch.set_num_threads(threads)
    m = bbans.load_model(model)
    t = time.perf_counter()
    # K > 1: Monte-Carlo bits-back (bbans/bitsback/importance.py)
    kw = {"particles": particles} if particles > 1 else {}
    blob, report = bbans.compress_with_report(data, m, method=method, **kw)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    back = bbans.decompress(blob, m)
    t_dec = time.perf_counter() - t
    return {"bytes": len(blob), "encode_s": t_enc, "decode_s": t_dec, "method": report.method,
            "exact": bool(np.array_equal(np.asarray(back), data))}


def nll_subset(n: int, k: int) -> np.ndarray:
    """Sorted indices of a fixed random subset of k of n items (numpy default_rng(1), as scripts/ship_model.py)."""
    return np.sort(np.random.default_rng(1).choice(n, min(k, n), replace=False))


def job_model_eval(data: np.ndarray, model: str, nll_items: int, nll_samples: int, threads: int = 1) -> dict:
    import torch

    import bbans

    torch.set_num_threads(threads)
    m = bbans.load_model(model)
    t = time.perf_counter()
    neg_elbo = float(m.neg_elbo_bits(data).sum()) / data.size
    t_elbo = time.perf_counter() - t
    subset = data[nll_subset(len(data), nll_items)]
    t = time.perf_counter()
    nll = float(m.iwae_bits(subset, nll_samples).sum()) / subset.size
    t_nll = time.perf_counter() - t
    return {"neg_elbo": neg_elbo, "nll": nll, "neg_elbo_subset": float(m.neg_elbo_bits(subset).sum()) / subset.size,
            "nll_items": len(subset), "nll_samples": nll_samples, "elbo_s": t_elbo, "nll_s": t_nll,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def job_one_image(data: np.ndarray) -> dict:
    """Bytes of each codec on one image (``data`` of shape (1, 28, 28))."""
    import torch

    import bbans
    from bbans.container.classic import reference_input

    torch.set_num_threads(1)  # sizes only; one thread is the robust choice on a shared machine
    binary = _is_binary(data)
    raw, what = reference_input(data)
    sizes = {"raw input to the generic tools": len(raw)}
    for name, (enc, dec) in generic_codecs().items():
        blob = enc(raw)
        _check(dec(blob) == raw, name)
        sizes[name] = len(blob)
    for fmt in ("png", "webp"):
        blob = image_encode(data[0], fmt, binary)
        _check(np.array_equal(image_decode(blob, binary), data[0]), fmt)
        sizes[fmt] = len(blob)
    model = bbans.default_model_for(data)
    out = {"sizes": sizes, "input": what, "model": model.name}
    for method in ("auto", "bits-back"):
        blob, report = bbans.compress_with_report(data, model, method=method)
        _check(np.array_equal(np.asarray(bbans.decompress(blob, model)), data), f"bbans {method}")
        out[f"bbans_{method}"] = {"bytes": len(blob), "method": report.method}
    return out


JOBS = {"generic": job_generic, "image": job_image, "bbans": job_bbans, "model_eval": job_model_eval,
        "one_image": job_one_image}


def preload(job: str, spec: dict) -> None:
    """Import what ``job`` (with its arguments ``spec``) needs before ``start_mib`` is taken, so that the start
    figure holds the imports. A generic job loads the optional codecs (the ``bench`` extra) only if it runs one."""
    import bbans  # noqa: F401  (numpy + constriction)

    if job == "generic":
        generic_codecs(optional=spec.get("codec") not in generic_codecs(optional=False))
    if job in ("image", "one_image"):
        from PIL import Image, PngImagePlugin, WebPImagePlugin  # noqa: F401
    if job in ("bbans", "model_eval", "one_image"):
        import bbans_models.coding_model  # noqa: F401
        import torch  # noqa: F401


def main() -> None:
    spec = json.loads(sys.argv[1])
    data = np.load(spec.pop("data"))
    name = spec.pop("job")
    job = JOBS[name]
    preload(name, spec)
    start = _rss_mib()
    result = job(data, **spec)
    result.update(peak_mib=_rss_mib(), start_mib=start)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
