"""A folder through ``bbans compress DIR`` and ``bbans decompress``: one collection archive, restored and compared.

Compares the restored folder with the original: the same relative names, identical pixels for PNG files (and the
same ancillary chunks), identical bytes for every other file; prints the archive size, bits per sub-pixel over the
PNG images' sub-pixels (H x W x C), and the wall times.

    python benchmarks/folder_roundtrip.py ../shared/data/photos [-j 2 | --scheduler local:2]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path)
    p.add_argument("extra", nargs=argparse.REMAINDER, help="further 'bbans compress' options, e.g. -j 2")
    args = p.parse_args(argv)
    src = args.folder.resolve()
    work = Path(tempfile.mkdtemp(prefix="bbans-folder-"))
    try:
        archive, back = work / "set.bba", work / "back"
        t = time.perf_counter()
        subprocess.run(["bbans", "compress", str(src), "-o", str(archive), "-q", *args.extra], check=True)
        t_enc = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run(["bbans", "decompress", str(archive), "-o", str(back), "-q"], check=True)
        t_dec = time.perf_counter() - t
        names, restored = files(src), files(back)
        assert names == restored, f"names differ: {sorted(set(names) ^ set(restored))[:5]}"
        subpixels = pngs = 0
        for name in names:
            a, b = src / name, back / name
            if name.lower().endswith(".png"):
                x, y = np.asarray(Image.open(a)), np.asarray(Image.open(b))
                assert x.shape == y.shape and np.array_equal(x, y), f"{name}: pixels differ"
                subpixels, pngs = subpixels + x.size, pngs + 1
            else:
                assert a.read_bytes() == b.read_bytes(), f"{name}: bytes differ"
        size = archive.stat().st_size
        print(f"{len(names)} files ({pngs} PNG, {subpixels:,} sub-pixels): names identical, PNG pixels identical, "
              f"other files byte-identical")
        print(f"archive {size:,} bytes = {8 * size / subpixels:.4f} bits per sub-pixel over the PNG sub-pixels "
              f"(the whole archive, other files included); compress {t_enc:.1f} s, decompress {t_dec:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
