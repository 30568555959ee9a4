"""The photo model family (``photo_vae``, ``photo_likelihood``, ``photo_data``, ``photo_training``) on tiny models and
synthetic images (seconds): shapes for any size and channel count, the autoregressive head's causality over
pixels and channels, the likelihood's normalization and its agreement with a naive loop, learning, and
checkpoint + resume through the common trainer."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bbans_models.datasets import PHOTO_RECIPES, data_root, PHOTO_FOLDERS
from bbans_models.likelihoods import logistic_mixture_log_prob
from bbans_models.photo_data import RandomCrops, load_png_folders, read_png, tile_subset, tiles
from bbans_models.photo_likelihood import (COEF_BOUND, channel_mixture_log_prob, channel_mixture_log_prob_subpixels,
                                           channel_pairs, mixture_param_count, param_groups, split_channel_mixture)
from bbans_models.photo_training import FreeBits, evaluate_images, evaluate_photo, photo_config
from bbans_models.photo_vae import PhotoVAE, PhotoVAEConfig
from bbans_models.train import load_float_checkpoint, train, training_loss

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (measured: 25 steps 0.27 s on 1 thread, 10.8 s on 2 of a busy
    2-core machine); the previous setting is restored for the other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = dict(components=3, hidden=[4, 6, 8], depth=1, latent_channels=2, top_latent_channels=2, top_hidden=4,
            ar_channels=4, ar_kernel=3)


def tiny(channels=3, **kw) -> PhotoVAE:
    torch.manual_seed(0)
    return PhotoVAE(PhotoVAEConfig(channels=channels, **{**TINY, **kw})).eval()


def smooth_images(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    """Photo-like uint8 (n, C, size, size): smooth gradients, correlated channels, a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, channels, size, size), np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(-1, 1, 3)
        base = 128 + 80 * (a * xx + b * yy + c * np.sin(6 * xx * a))
        for ch in range(channels):
            out[i, ch] = np.clip(base + 20 * ch + rng.normal(0, 3, base.shape), 0, 255)
    return out


# ------------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(32, 32), (64, 32), (32, 64), (64, 64)])
def test_shapes_for_any_size_and_channel_count(channels, size):
    h, w = size
    model = tiny(channels)
    cfg = model.config
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, channels, h, w), dtype=np.uint8))
    mu, log_sigma = model.posterior(x)
    assert mu.shape == log_sigma.shape == (2, *cfg.latent_shape(h, w)) == (2, 2, h // 4, w // 4)
    mu2, _ = model.top_posterior(mu)
    assert mu2.shape == (2, *cfg.top_latent_shape(h, w)) == (2, 2, h // 8, w // 8)
    assert model.conditional_prior(mu2)[0].shape == mu.shape
    decoded = model.decode(mu)
    assert decoded.shape == (2, channels * cfg.ar_channels, h, w)
    assert model.likelihood_params(x, decoded).shape == (2, mixture_param_count(channels, 3), h, w)
    rec, latent = model.elbo_terms(x)
    assert rec.shape == latent.shape == (2,) and torch.isfinite(rec + latent).all()
    assert model.iwae_log_weights(x, 3).shape == (3, 2)
    assert set(model.layer_terms(x)) == {"reconstruction", "z1", "z2"}


@pytest.mark.parametrize("kw", [dict(ar_channels=0), dict(top_latent_channels=0),
                                dict(latent_channels=0, top_latent_channels=0), dict(head_kernel=3)])
def test_variants_build_and_score(kw):
    model = tiny(3, **kw)
    x = torch.from_numpy(smooth_images(2))
    assert model.neg_elbo(x).shape == (2,) and torch.isfinite(model.neg_elbo(x)).all()
    assert torch.isfinite(model.log_weights(x)).all()


def test_parameter_layout_and_counts():
    assert mixture_param_count(1, 5) == 15 and mixture_param_count(3, 5) == 60
    assert channel_pairs(3) == [(1, 0), (2, 0), (2, 1)]
    groups = param_groups(3, 2)
    assert groups.tolist() == [0, 0, 1, 1, 2, 2] * 3 + [1, 1, 2, 2, 2, 2]
    with pytest.raises(ValueError):
        PhotoVAEConfig(latent_channels=0, ar_channels=0)
    assert photo_config().channels == 3 and "photo" in PHOTO_RECIPES


# ------------------------------------------------------------------------------------------------ causality


def test_ar_head_is_causal_over_pixels_and_channels():
    """Jacobian of every parameter at pixel p w.r.t. the head's input: zero for later pixels; at p itself, R's
    parameters see no channel, G's only R, B's only R and G. With every hidden unit active (large context) the
    allowed dependences are all nonzero."""
    model = tiny(3, ar_kernel=5)
    cfg = model.config
    h = w = 8
    decoded = torch.full((1, 3 * cfg.ar_channels, h, w), 50.0)          # ReLU active everywhere
    xf = torch.rand(1, 3, h, w, requires_grad=True)
    params = model.ar_out(torch.relu(decoded + model.ar_masked(xf)))    # (1, P, h, w)
    groups = param_groups(3, cfg.components)
    i, j = 4, 3
    for p_idx, g in enumerate(groups.tolist()):
        grad, = torch.autograd.grad(params[0, p_idx, i, j], xf, retain_graph=True)
        grad = grad[0].abs()                                             # (3, h, w)
        flat = grad.flatten(1)                                           # (3, h*w)
        t = i * w + j
        assert flat[:, t + 1:].sum() == 0, "a parameter sees a later pixel"
        assert (flat[:g, t] > 0).all() and flat[g:, t].sum() == 0, f"group {g} at its own pixel"
        assert (grad[:, i - 1, j] > 0).all() and (grad[:, i, j - 1] > 0).all()  # the neighbours above and left


def test_changing_a_later_subpixel_never_changes_earlier_parameters():
    """Through the whole path (integer pixels, decoder context, head, and the linear channel terms of the means):
    change sub-pixel (c, t) of the images; every parameter of earlier pixels, and of channels <= c at pixel t,
    stays bit-identical."""
    model = tiny(3)
    x = torch.from_numpy(smooth_images(2, size=16))
    decoded = model.decode(model.posterior(x)[0])
    base = split_channel_mixture(model.likelihood_params(x, decoded), x, 3, 3)
    t = 100                                                          # pixel (6, 4) of 16 x 16
    for c in range(3):
        moved_x = x.clone()
        moved_x.view(2, 3, -1)[:, c, t] ^= 0x55
        moved_x.view(2, 3, -1)[:, :, t + 1:] = 255 - moved_x.view(2, 3, -1)[:, :, t + 1:]
        moved = split_channel_mixture(model.likelihood_params(moved_x, decoded), moved_x, 3, 3)
        for a, b in zip(base, moved):                                   # logits, means, log-scales (B, C, K, H, W)
            fa, fb = a.flatten(3), b.flatten(3)
            assert torch.equal(fa[..., :t], fb[..., :t])
            assert torch.equal(fa[:, : c + 1, :, t], fb[:, : c + 1, :, t])
        assert not torch.equal(base[1].flatten(3)[:, c + 1:, :, t], moved[1].flatten(3)[:, c + 1:, :, t]) or c == 2


# ------------------------------------------------------------------------------------------------ likelihood


def _random_raw(b, c, k, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(b, mixture_param_count(c, k), h, w, generator=g) * 1.5
    return raw


@pytest.mark.parametrize("channels", [1, 3])
def test_likelihood_normalizes_over_the_256_values(channels):
    """exp(log p(x_c | x_<c)) summed over x_c in 0..255 is 1 for every sub-pixel, with random parameters
    (including means beyond the edges and tiny and huge scales)."""
    k, h, w = 4, 3, 3
    raw = _random_raw(1, channels, k, h, w)
    ck = channels * k
    raw[0, ck:2 * ck, 0, 0] = 1.3      # means beyond 255
    raw[0, ck:2 * ck, 0, 1] = -1.2     # means below 0
    raw[0, 2 * ck:3 * ck, 1, 0] = -8   # scales near the minimum
    raw[0, 2 * ck:3 * ck, 1, 1] = 8    # scales near the maximum
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (1, channels, h, w), dtype=np.uint8))
    for c in range(channels):
        xs = x.repeat(256, 1, 1, 1)
        xs[:, c] = torch.arange(256, dtype=torch.uint8).view(256, 1, 1)
        log_p = channel_mixture_log_prob_subpixels(xs, raw.expand(256, -1, -1, -1), k)[:, c]   # (256, h, w)
        total = torch.logsumexp(log_p.double(), dim=0)
        assert torch.allclose(total, torch.zeros_like(total), atol=2e-5), (c, total)


def _naive_log_prob(x: np.ndarray, raw: np.ndarray, k: int) -> np.ndarray:
    """Per sub-pixel log p(x_c | x_<c), float64, by explicit loops over the formula of ``photo_likelihood``."""
    from bbans_models.likelihoods import LOG_SCALE_MAX, LOG_SCALE_MIN, LOGIT_BOUND, MEAN_MAX, MEAN_MIN

    def sig(v):
        return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))

    b_n, c_n, h_n, w_n = x.shape
    pairs = channel_pairs(c_n)
    out = np.zeros(x.shape)
    for b in range(b_n):
        for i in range(h_n):
            for j in range(w_n):
                for c in range(c_n):
                    r = lambda idx: float(raw[b, idx, i, j])  # noqa: E731
                    logits = [min(max(r(c * k + m), -LOGIT_BOUND), LOGIT_BOUND) for m in range(k)]
                    z = max(logits)
                    log_norm = z + math.log(sum(math.exp(l - z) for l in logits))
                    total = 0.0
                    for m in range(k):
                        mean = 127.5 + 127.5 * r(c_n * k + c * k + m)
                        for p_i, (to, frm) in enumerate(pairs):
                            if to == c:
                                coef = COEF_BOUND * (2 * sig(r(3 * c_n * k + p_i * k + m)) - 1)
                                mean += coef * (float(x[b, frm, i, j]) - 127.5)
                        mean = min(max(mean, MEAN_MIN), MEAN_MAX)
                        log_s = LOG_SCALE_MIN + (LOG_SCALE_MAX - LOG_SCALE_MIN) * sig(r(2 * c_n * k + c * k + m))
                        s = math.exp(log_s)
                        v = float(x[b, c, i, j])
                        a, b_ = (v + 0.5 - mean) / s, (v - 0.5 - mean) / s
                        if v >= 255:
                            mass = sig(-b_)                               # 1 - sigma(b): the upper tail
                        elif v <= 0:
                            mass = sig(a)                                 # the lower tail
                        elif b_ > 0:
                            mass = sig(-b_) - sig(-a)                     # both near 1: difference of tails
                        else:
                            mass = sig(a) - sig(b_)
                        total += math.exp(logits[m] - log_norm) * mass
                    out[b, c, i, j] = math.log(total)
    return out


@pytest.mark.parametrize("channels", [1, 3])
def test_vectorized_likelihood_matches_a_naive_loop(channels):
    k = 3
    raw = _random_raw(2, channels, k, 4, 5, seed=3) * 0.7
    x = np.random.default_rng(2).integers(0, 256, (2, channels, 4, 5)).astype(np.uint8)
    x[0, :, 0, 0], x[0, :, 0, 1] = 0, 255                                # the edge bins
    fast = channel_mixture_log_prob_subpixels(torch.from_numpy(x), raw, k).double().numpy()
    slow = _naive_log_prob(x, raw.double().numpy(), k)
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=2e-4)
    assert channel_mixture_log_prob(torch.from_numpy(x), raw, k).shape == (2,)


def test_one_channel_equals_the_grey_likelihood():
    """C = 1: the same layout and values as ``likelihoods.logistic_mixture_log_prob`` (the MNIST models')."""
    raw = _random_raw(3, 1, 5, 6, 6)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 1, 6, 6), dtype=np.uint8))
    assert torch.allclose(channel_mixture_log_prob(x, raw, 5), logistic_mixture_log_prob(x, raw, 5), rtol=1e-5)


def test_likelihood_is_float32_under_bf16_parameters():
    raw = _random_raw(2, 3, 2, 4, 4)
    x = torch.from_numpy(smooth_images(2, size=4))
    full = channel_mixture_log_prob(x, raw, 2)
    half = channel_mixture_log_prob(x, raw.bfloat16(), 2)
    assert half.dtype == torch.float32 and torch.allclose(full, half, rtol=0.05)


# ------------------------------------------------------------------------------------------------ training


def test_a_few_steps_lower_the_loss():
    model = tiny(3).train()
    x = torch.from_numpy(smooth_images(16, size=16))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(1)
    losses = []
    for _ in range(25):
        loss, _ = training_loss(model, x, "elbo", 1.0, 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses


def _synthetic_photos():
    rng = np.random.default_rng(0)
    return [smooth_images(1, size=s, seed=s)[0] for s in (48, 64)] + [rng.integers(0, 256, (3, 40, 56), np.uint8)]


def test_random_crops_are_deterministic_flipped_and_cover_the_images():
    crops = RandomCrops(_synthetic_photos(), crop=16, per_epoch=64)
    a, b, c = crops.epoch(0, 0), crops.epoch(0, 0), crops.epoch(0, 1)
    assert a.shape == (64, 3, 16, 16) and a.dtype == np.uint8 and len(crops) == 64
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert crops.item_shape == (3, 16, 16)


def test_tiles_and_png_reading(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (40, 70, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "b.png")
    assert np.array_equal(read_png(tmp_path / "a.png"), rgb.transpose(2, 0, 1))
    assert read_png(tmp_path / "b.png", channels=1).shape == (1, 40, 70)
    images = load_png_folders([tmp_path])
    assert len(images) == 2 and images[1].shape == (3, 40, 70)          # grey converted to RGB
    t = tiles([images[0]], 16)
    assert t.shape == (2 * 4, 3, 16, 16)                                  # 40x70 -> 2 x 4 whole tiles
    assert np.array_equal(t[5], images[0][:, 16:32, 16:32])              # raster order: row 1, column 1
    sub = tile_subset(t, 3)
    assert len(sub) == 3 and np.array_equal(sub, tile_subset(t, 3))


def test_train_checkpoint_and_resume_continue_exactly(tmp_path):
    """The common trainer takes the photo config and an epoch source of crops: checkpoints record the family,
    load back as a PhotoVAE, and 1 + 1 epochs (resumed, optimizer state restored) equal 2 epochs."""
    crops = RandomCrops(_synthetic_photos(), crop=16, per_epoch=32)
    test = smooth_images(8, size=16)
    cfg = PhotoVAEConfig(**TINY)
    whole, split = tmp_path / "whole.st", tmp_path / "split.st"
    lines = []
    kw = dict(batch_size=8, kl_warmup_steps=3, test_data=test, log=lines.append)
    train(cfg, crops, whole, epochs=2, **kw)
    train(cfg, crops, split, epochs=1, **kw)
    model1, facts1 = load_float_checkpoint(split)
    assert isinstance(model1, PhotoVAE) and model1.config == cfg and facts1["steps"] == 4
    assert math.isfinite(facts1["test_neg_elbo_bpd"])
    lines.clear()
    train(cfg, crops, split, epochs=2, resume=True, **kw)
    assert any("restored the optimizer state" in line for line in lines)
    a, facts_a = load_float_checkpoint(whole)
    b, facts_b = load_float_checkpoint(split)
    assert facts_b["epochs"] == 2 and facts_b["steps"] == 8
    for key, value in a.state_dict().items():
        assert torch.allclose(value, b.state_dict()[key], atol=1e-6), key
    assert abs(facts_a["test_neg_elbo_bpd"] - facts_b["test_neg_elbo_bpd"]) < 1e-4
    terms = evaluate_photo(b, test)
    assert abs(terms["neg_elbo"] - (terms["reconstruction"] + terms["z1"] + terms["z2"])) < 1e-9


@pytest.mark.skipif(not (data_root() / PHOTO_FOLDERS["kodak"]).is_dir(), reason="shared/data/photos not present")
def test_kodak_tiles_are_the_fixed_subset():
    from bbans_models.photo_data import kodak_tiles

    sub = kodak_tiles(16)
    assert sub.shape == (16, 3, 32, 32) and sub.dtype == np.uint8
    assert np.array_equal(sub, kodak_tiles(16))


def test_free_bits_loss_reports_the_true_elbo_and_trains(tmp_path):
    model = tiny(3)
    x = torch.from_numpy(smooth_images(4, size=16))
    torch.manual_seed(5)
    channels = model.channel_terms(x)
    torch.manual_seed(5)
    layers = model.layer_terms(x)
    assert channels["z1"].shape == (4, 2) and channels["z2"].shape == (4, 2)
    for key in ("z1", "z2"):
        assert torch.allclose(channels[key].sum(1), layers[key], rtol=1e-5, atol=1e-4)
    torch.manual_seed(5)
    rec, latent = model.elbo_terms(x)
    assert torch.allclose(rec, layers["reconstruction"]) and torch.allclose(latent, layers["z1"] + layers["z2"],
                                                                              rtol=1e-5, atol=1e-3)
    objective = FreeBits(0.5)
    torch.manual_seed(5)
    loss, per_item = objective(model, x, 1.0)
    assert torch.allclose(per_item, rec + latent, rtol=1e-5, atol=1e-3)
    assert loss >= rec.mean() - 1e-3                               # the floors only add
    crops = RandomCrops(_synthetic_photos(), crop=16, per_epoch=16)
    lines = []
    train(PhotoVAEConfig(**TINY), crops, tmp_path / "fb.st", epochs=1, batch_size=8, test_data=x.numpy(),
          objective=objective, log=lines.append)
    facts = load_float_checkpoint(tmp_path / "fb.st")[1]
    assert facts["objective"] == "elbo-free-bits-0.5" and math.isfinite(facts["test_neg_elbo_bpd"])
    assert any("bits/dim" in line for line in lines)


def test_whole_images_of_any_size_are_evaluated_like_their_tiles():
    """An image scored whole and the same pixels as one batch item give the same bound (same seed)."""
    model = tiny(3)
    images = [smooth_images(1, size=32, seed=1)[0], smooth_images(1, size=16, seed=2)[0][:, :, :8]]
    whole = evaluate_images(model, images)
    assert set(whole) == {"reconstruction", "z1", "z2", "latent", "neg_elbo"} and whole["neg_elbo"] > 0
    one = evaluate_photo(model, images[0][None])
    assert abs(evaluate_images(model, images[:1])["neg_elbo"] - one["neg_elbo"]) < 1e-6
