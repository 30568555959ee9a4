"""The examples and explanations each command's ``--help`` prints below its options (click epilogs; ``\b``
keeps click from rewrapping a paragraph)."""

MAIN = """\b
Examples:
  bbans compress t10k-images.idx3-ubyte.gz      # -> t10k-images.idx3-ubyte.gz.bba
  bbans decompress t10k-images.idx3-ubyte.gz.bba  # -> t10k-images.idx3-ubyte (uncompressed IDX)
  bbans compress a.npy b.png c.txt              # one archive each
  bbans test *.bba                              # decode every archive, write nothing
  bbans info digits.npy.bba
  bbans eval digits.npy --limit 1000
  bbans models

\b
Exit codes: 0 ok, 1 output or other error, 2 bad input or usage, 3 corrupt archive,
4 model missing or unfit, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 141 the
reader of standard output closed it early (quietly, as gzip). With several FILEs, the
first failure's code. BBANS_DEBUG=1 shows tracebacks.

\b
Progress: an updating line on a terminal; elsewhere (logs, pipelines) one line every
10 s on standard error (BBANS_PROGRESS_EVERY=S to change; BBANS_PROGRESS=0 or -q: none).
"""

COMPRESS = """\b
Examples:
  bbans compress t10k-images.idx3-ubyte.gz
  bbans compress a.npy b.png c.txt                # three archives: a.npy.bba, b.png.bba, c.txt.bba
  bbans compress digits.npy -o /tmp/digits.bba --batch-size 200
  bbans compress digit.png --model mnist
  bbans compress t10k-images.idx3-ubyte.gz --method lzma   # no model: classical codec
  bbans compress digits.npy --model ./my-model.safetensors -f

\b
Inputs (detected by content, not by name):
  .npy   uint8 or bool, C order, (N,H,W), (N,H,W,C) or one (H,W) image: restored
         byte for byte
  IDX    MNIST files, plain or gzip-compressed: restored byte for byte, a .gz input
         as the uncompressed IDX file (gzip output differs between gzip programs)
  PNG    one 8-bit image (modes 1, L, P, LA, RGB, RGBA): restored with identical pixels,
         mode, palette and transparency, and every other chunk (text, ICC profile,
         gamma, pHYs, eXIf, tIME, ...) verbatim in its place; the pixel data is
         compressed anew, so not identical file bytes. A PNG that could not come back
         so (e.g. bytes after IEND) is coded as its raw bytes instead
  other  any other file (text, random bytes, a 16-bit PNG, a float .npy, ...): its raw
         bytes, coded with the smallest classical codec and restored byte for byte

\b
No model fits (or the model would do worse): --method auto picks the smallest classical
codec and says why; the archive is never more than the input file plus a small header
(about 25 bytes, plus ~30 bytes per chunk). Inputs of more than one chunk (default
10,000 items, at most 8 MiB; --chunk-items) become a multi-chunk archive: .npy, IDX and
raw inputs are read through a memory map one chunk at a time (memory does not grow with
the input), -j N codes chunks in N processes with identical output for any N, and
'bbans decompress --range I:J' decodes only the chunks holding items I..J-1.
The archive is written to a temporary file and renamed when complete; the input is
kept unless --rm; '-' reads standard input (and writes the archive to stdout).

\b
Examples of the above:
  bbans compress notes.txt                        # raw bytes, lzma/bz2/deflate/stored
  bbans compress train-images.npy -j 2 --no-elbo  # 60,000 items: 6 chunks, 2 processes
  tar c photos | bbans compress - > photos.tar.bba
"""

DECOMPRESS = """\b
Examples:
  bbans decompress digits.npy.bba                  # -> digits.npy
  bbans decompress *.bba                           # each next to its archive
  bbans decompress t10k-images.idx3-ubyte.gz.bba   # -> t10k-images.idx3-ubyte
  bbans decompress a.bba -o restored.npy -f
  bbans decompress a.bba --model ./my-model.safetensors
  bbans decompress train.npy.bba --range 20000:20100 -o some.npy   # only the chunk(s) holding them
  bbans decompress big.npy.bba -j 2 --rm
  cat a.bba | bbans decompress - > a.npy

\b
The data's checksums are verified before the output appears: it is written to a
temporary file beside it and renamed only when complete. With -c, a multi-chunk
archive is written chunk by chunk as each chunk verifies; a failure then exits
non-zero after partial output. --range I:J restores items I..J-1 as a file of the
same kind (npy/IDX header rewritten for J-I items; raw files: bytes I..J-1).
--rm deletes the archive only once the output is complete and on disk (never with -c).
'bbans test' checks an archive the same way without writing anything.
"""

TEST = """\b
Examples:
  bbans test digits.npy.bba
  bbans test *.bba -q && echo all good
  bbans test big.npy.bba -j 2 --json

\b
Decodes every item, as decompress would, and checks every checksum and the stored
file header (or PNG chunks); writes nothing. Exit 0: every archive is good; 3: one is
damaged; 4: its model is missing or differs.
"""

INFO = """\b
Examples:
  bbans info digits.npy.bba
  bbans info digits.npy.bba --json | python -m json.tool
"""

EVAL = """\b
Examples:
  bbans eval t10k-images.idx3-ubyte.gz --limit 1000
  bbans eval digits.npy --model ./my-model.safetensors --samples 200
  bbans eval digits.npy --classical
  bbans eval binarized.npy --particles 50      # Monte-Carlo bits-back vs its IWAE-50 bound
  bbans eval digits.npy -k 50 --iwae-k 5        # quicker estimates

\b
-ELBO is the rate bits-back coding aims at. Each step shows its progress (on a terminal,
an updating line; elsewhere a line every 10 s); the NLL step is the slowest (k network
passes per item). The IWAE-k bound (k samples, default 10 as in
the seed's tables) lies between it and the NLL; the NLL estimate (250 samples by default,
also as in the seed) approaches the model's true negative log-likelihood, the best any coder
could do with this model. With --particles K the archive is coded with K importance-sampled
particles and aims at the IWAE-K bound instead, which is printed beside it. All figures are
bits per dimension (per pixel) over the whole data.
"""

MODELS = """\b
Examples:
  bbans models
  bbans models --json
"""

TRAIN = """\b
Examples:
  bbans train mnist --out mnist.safetensors --minutes 60 --lr-schedule cosine
  bbans train binarized-mnist --out bin.safetensors --epochs 30 --device cuda
  bbans train mnist-small --out small.safetensors --minutes 20        # the faster one-layer model
  bbans train mnist --out m.safetensors --objective iwae --iwae-k 5   # train on the IWAE-5 bound
  bbans train mnist --out mnist.safetensors --minutes 90 --resume     # continue to 90 min in all
  bbans train mnist --out mnist.safetensors --resume --epochs 0       # export the checkpoint as is
  bbans train photo --out photo.safetensors --minutes 120 --lr-schedule cosine
  bbans compress digits.npy --model mnist.safetensors

\b
RECIPE names the architecture and data set of a shipped model:
  mnist                   8-bit MNIST: one latent layer, autoregressive 5-logistic mixture
  binarized-mnist         binarized MNIST: two latent layers, autoregressive Bernoulli
  mnist-small             8-bit MNIST: one latent layer, independent pixels (decodes faster)
  binarized-mnist-small   binarized MNIST: one latent layer, independent pixels
  binarized-mnist-fast    binarized-mnist-small at half the width: ~4x less network work
  photo                   RGB photos of any size (Urban100 + BSD68, 32x32 crops with
                          flips; -ELBO on Kodak tiles in bits per sub-pixel): two latent
                          layers, autoregressive RGB 5-logistic mixture, coded as 64x64 tiles
--latent-channels, --top-latent-channels and --ar-channels change its sizes.

\b
Training data comes from $BBANS_DATA (default: ../shared/data beside the source
checkout): mnist/*.idx3-ubyte.gz, binarized_mnist/*.amat, photos/. The float checkpoint
PATH.float.safetensors (weights and optimizer state) is saved after every epoch;
Ctrl-C keeps the last one, and --resume continues from it (--minutes and --epochs
then count the whole run). Progress lines show the running -ELBO in bits/dim.
"""
