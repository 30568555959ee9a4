"""``bbans eval``'s measurements: a model's -ELBO, IWAE-k bound and NLL estimate on data beside the real archive
rate (coded in memory and decoded again), and optionally the classical tools, as one table in bits/dim.

Bounds come from the model's ``Evaluable`` methods (bbans/bitsback/protocol.py): -ELBO, and the k-sample
importance-weighted bound of Burda et al., "Importance weighted autoencoders" (ICLR 2016), whose k = 250 value
serves as the NLL estimate.
"""
from __future__ import annotations

import time

import numpy as np

from bbans.bitsback.protocol import Evaluable
from bbans.container.choice import summed_bits
from bbans.container.sinks import MemorySink
from bbans.container.sources import ArraySource
from bbans.errors import ArchiveError

from .ui import fmt_gap, fmt_seconds, table


def _timed(progress_cls, label: str, fn):
    t = time.perf_counter()
    with progress_cls(label) as progress:
        value = fn(progress)
    return value, time.perf_counter() - t


def evaluate(data: np.ndarray, model, *, samples: int, iwae_k: int, batch_size: int, particles: int,
             classical: bool, progress) -> str:
    """The table of measurements of ``model`` on ``data`` (uint8 (N, *item_shape)); ``progress(label)`` makes a
    progress callback for each step (every step reports: -ELBO, each IWAE bound, the NLL estimate, which is the
    slowest, coding, decoding and the classical codecs). ArchiveError if the archive does not round-trip."""
    from bbans.container.pipeline import EncodeOptions, decode_all, encode

    dims, rows, bounds = data.size, [], {}
    if isinstance(model, Evaluable):
        elbo, t = _timed(progress, "-ELBO", lambda p: summed_bits(model.neg_elbo_bits, data, progress=p) / dims)
        rows.append(["-ELBO", f"{elbo:.4f}", fmt_seconds(t), ""])
        bounds["-ELBO"] = elbo
        steps = [(f"IWAE-{k}", k) for k in sorted({iwae_k, particles} - {1})] + [("NLL", samples)]
        for label, k in steps:
            chunk = max(1, min(500, 20_000 // k))
            value, t = _timed(progress, label if label != "NLL" else f"NLL k={k}",
                              lambda p, k=k: summed_bits(lambda x: model.iwae_bits(x, k), data, chunk, p) / dims)
            if label == "NLL":
                rows.append([f"NLL (IWAE, k={k})", f"{value:.4f}", fmt_seconds(t), ""])
                bounds["NLL"] = value
                continue
            aimed = k == particles
            rows.append([f"{label} bound", f"{value:.4f}", fmt_seconds(t), "what the archive aims at" if aimed else ""])
            if aimed:
                bounds[label] = value
    else:
        rows.append(["-ELBO", "n/a", "", "model has no neg_elbo_bits"])
        rows.append([f"NLL (IWAE, k={samples})", "n/a", "", "model has no iwae_bits"])

    sink = MemorySink()
    options = EncodeOptions(method="bits-back", batch_size=batch_size, particles=particles,
                            chunk_items=max(1, len(data)))
    rep, t_enc = _timed(progress, "compressing",
                        lambda p: encode(ArraySource(np.ascontiguousarray(data)), sink, options, model=model,
                                         progress=p))
    blob = sink.getvalue()
    back, t_dec = _timed(progress, "decompressing", lambda p: decode_all(blob, model, p))
    if back.shape != data.shape or not np.array_equal(back, data):
        raise ArchiveError("round trip FAILED: the decoded data differs from the input "
                           "(this is a bug or a non-deterministic model; please report it)")
    bpd = 8 * len(blob) / dims
    rows.append([f"archive ({rep.method})", f"{bpd:.4f}", f"{fmt_seconds(t_enc)} + {fmt_seconds(t_dec)}",
                 f"{len(blob):,} bytes, encode + decode, round trip verified"])
    if classical:
        from bbans.container.classic import REFERENCE_CODECS, reference_input

        raw, what = reference_input(data)
        with progress("classical codecs", unit="codecs") as p:  # xz -9e on 7.8 MB takes several seconds
            for k, (name, fn, _) in enumerate(REFERENCE_CODECS):
                p(k, len(REFERENCE_CODECS))
                t = time.perf_counter()
                nbytes = len(fn(raw))
                rows.append([name, f"{8 * nbytes / dims:.4f}", fmt_seconds(time.perf_counter() - t), what])
            p(len(REFERENCE_CODECS), len(REFERENCE_CODECS))
    gaps = ", ".join(f"archive vs {name} {fmt_gap(bpd, value)}" for name, value in bounds.items())
    return table(rows, ["", "bits/dim", "time", ""]) + (
        f"\n\n{gaps} ({len(data):,} items, {dims:,} dims)" if gaps else "")
