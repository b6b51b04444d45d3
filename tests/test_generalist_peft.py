"""Adapters, LoRA, freezing and the trainable-parameter table on small SAM ViT and TinyViT encoders."""

import copy
import warnings

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from scsam_lite.errors import ConfigError
from scsam_lite.generalist.adapters import (
    AdaptedAttention,
    Adapter,
    ParallelAdapter,
    add_adapters,
    encoder_blocks,
    parse_blocks,
)
from scsam_lite.generalist.attention import FastAttention, FastTinyViTAttention, use_fast_attention
from scsam_lite.generalist.lora import LoRALinear, add_lora
from scsam_lite.generalist.peft import ParamRow, format_trainable_table, freeze_for_peft, trainable_table

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)

from small_encoders import randomise_position_tables, small_tinyvit, tinyvit_tokens  # noqa: E402

DIM = 64


def small_vit() -> ImageEncoderViT:
    torch.manual_seed(0)
    enc = ImageEncoderViT(
        img_size=64,
        patch_size=4,
        embed_dim=DIM,
        depth=3,
        num_heads=2,
        use_rel_pos=True,
        window_size=8,
        global_attn_indexes=(1,),
        out_chans=32,
    )
    randomise_position_tables(enc)
    return enc


class TinySam(nn.Module):
    """SAM's three parts, small."""

    def __init__(self, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.image_encoder = small_vit() if encoder is None else encoder
        self.prompt_encoder = PromptEncoder(
            embed_dim=32, image_embedding_size=(16, 16), input_image_size=(64, 64), mask_in_chans=4
        )
        self.mask_decoder = MaskDecoder(
            transformer_dim=32,
            transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=2),
            iou_head_hidden_dim=32,
        )


def _encoder_and_forward(arch: str):
    """A small encoder, its forward and an input for it."""
    if arch == "vit":
        encoder = small_vit()
        return encoder, encoder, torch.randn(2, 3, 64, 64)
    encoder = small_tinyvit(eval_mode=True)
    return encoder, lambda x: tinyvit_tokens(encoder, x), torch.randn(1, 3, 64, 64)


def _peft_params(encoder: nn.Module) -> list[nn.Parameter]:
    return [
        p for n, p in encoder.named_parameters() if ".adapter." in n or n.endswith((".A.weight", ".B.weight"))
    ]


@pytest.mark.parametrize("kind", ["adapters", "lora"])
@pytest.mark.parametrize("arch", ["vit", "tinyvit"])
def test_zero_init_is_exact_then_a_step_changes_the_output(arch, kind):
    encoder, forward, x = _encoder_and_forward(arch)
    with torch.no_grad():
        expected = forward(x)
    if kind == "adapters":
        assert add_adapters(encoder) == list(range(len(encoder_blocks(encoder))))
    else:
        add_lora(encoder, targets=("qkv", "proj"))
    params = _peft_params(encoder)
    assert params
    with torch.no_grad():
        assert torch.equal(forward(x), expected)

    opt = torch.optim.Adam(
        params, lr=0.01
    )  # Adam: a step of about lr per parameter, whatever the gradient scale
    forward(x).square().mean().backward()
    opt.step()
    with torch.no_grad():
        assert (forward(x) - expected).abs().max() > 1e-3


def test_encoder_blocks_in_order():
    vit = small_vit()
    assert encoder_blocks(vit) == list(vit.blocks)
    tiny = small_tinyvit(eval_mode=True)
    assert encoder_blocks(tiny) == [*tiny.layers[1].blocks, *tiny.layers[2].blocks]
    with pytest.raises(ConfigError, match="Linear is not an image encoder"):
        encoder_blocks(nn.Linear(3, 3))
    with pytest.raises(ConfigError, match="TinySam"):  # the whole model instead of its encoder
        add_adapters(TinySam())


def test_adapter_zero_init():
    x = torch.randn(4, 8)
    assert torch.equal(Adapter(8, 2)(x), torch.zeros(4, 8))
    assert Adapter(8, 2, zero_init=False)(x).abs().sum() > 0


def test_adapter_placement_and_size():
    vit = small_vit()
    assert add_adapters(vit, "last2", ratio=0.25, scale=0.3) == [1, 2]
    assert not isinstance(vit.blocks[0].attn, AdaptedAttention)
    block = vit.blocks[2]
    assert isinstance(block.attn, AdaptedAttention) and isinstance(block.mlp, ParallelAdapter)
    assert block.attn.adapter.down.out_features == 16 == round(DIM * 0.25)
    assert block.mlp.scale == 0.3

    # the MLP adapter runs beside the MLP on what the MLP gets; the space adapter on the attention output
    with torch.no_grad():
        for p in _peft_params(vit):
            p.normal_()
        x = torch.randn(2, 16, 16, DIM)
        mlp, attn = block.mlp, block.attn
        assert torch.allclose(mlp(x), mlp.mlp(x) + 0.3 * mlp.adapter(x))
        y = attn.attn(x)
        assert torch.allclose(attn(x), y + attn.adapter(y))

    tiny = small_tinyvit(eval_mode=True)
    add_adapters(tiny, [0], ratio=0.001)  # hidden = max(1, round(16 * 0.001))
    assert encoder_blocks(tiny)[0].mlp.adapter.down.out_features == 1


def test_adapters_follow_the_encoder_dtype():
    vit = small_vit().double()
    add_adapters(vit, "0")
    assert {p.dtype for p in vit.parameters()} == {torch.float64}


def test_adding_twice_is_refused_and_changes_nothing():
    vit = small_vit()
    add_adapters(vit, "1")
    with pytest.raises(ConfigError, match="block 1 already has adapters"):
        add_adapters(vit, "0,1")
    assert not isinstance(vit.blocks[0].attn, AdaptedAttention)  # checked before anything was changed
    assert not isinstance(vit.blocks[1].attn.attn, AdaptedAttention)

    add_lora(vit, blocks="last1")
    with pytest.raises(ConfigError, match="already has LoRA"):
        add_lora(vit, blocks="all")
    assert not isinstance(vit.blocks[0].attn.qkv, LoRALinear)


def test_parse_blocks():
    assert parse_blocks("all", 4) == [0, 1, 2, 3]
    assert parse_blocks("none", 4) == []
    assert parse_blocks("last2", 4) == [2, 3]
    assert parse_blocks("LAST4", 4) == [0, 1, 2, 3]
    assert parse_blocks(" 3, 0 ", 4) == [0, 3]
    assert parse_blocks([3, 1, 1], 4) == [1, 3]
    assert parse_blocks((), 4) == []
    for bad in ("7", [4], [-1], "0,-1"):
        with pytest.raises(ConfigError) as err:
            parse_blocks(bad, 4)
        assert "0..3" in str(err.value) and err.value.fix
    for bad in ("last5", "last0"):
        with pytest.raises(ConfigError, match="0..3"):
            parse_blocks(bad, 4)
    for bad in ("first2", "1;2", 1.5, [True], [0.5], None):
        with pytest.raises(ConfigError, match="not a block spec"):
            parse_blocks(bad, 4)


def test_lora_layers_and_errors():
    vit = small_vit()
    assert add_lora(vit, rank=2, alpha=8.0, blocks=[0, 2], targets=("qkv",)) == [0, 2]
    lora = vit.blocks[0].attn.qkv
    assert isinstance(lora, LoRALinear) and not isinstance(vit.blocks[1].attn.qkv, LoRALinear)
    assert lora.A.weight.shape == (2, DIM) and lora.B.weight.shape == (3 * DIM, 2)
    assert lora.A.weight.abs().sum() > 0 and lora.B.weight.abs().sum() == 0
    assert lora.in_features == DIM and lora.out_features == 3 * DIM and lora.weight is lora.base.weight
    with torch.no_grad():
        lora.B.weight.normal_()
        x = torch.randn(5, DIM)
        assert torch.allclose(lora(x), lora.base(x) + 4.0 * lora.B(lora.A(x)))  # alpha / rank = 4

    with pytest.raises(ConfigError, match="'q' is not a linear layer") as err:
        add_lora(small_vit(), targets=("q",))
    assert "['proj', 'qkv']" in err.value.fix
    for kwargs in ({"rank": 0}, {"rank": 2.5}, {"alpha": 0.0}, {"targets": ()}):
        with pytest.raises(ConfigError):
            add_lora(small_vit(), **kwargs)


def test_lora_after_adapters_and_on_tinyvit():
    vit = small_vit()
    add_adapters(vit)
    add_lora(vit, targets=("proj",))
    assert isinstance(vit.blocks[0].attn.attn.proj, LoRALinear)
    tiny = small_tinyvit(eval_mode=True)
    assert add_lora(tiny, blocks="last1") == [3]
    assert isinstance(encoder_blocks(tiny)[3].attn.qkv, LoRALinear)


@pytest.mark.parametrize("arch", ["vit", "tinyvit"])
def test_peft_with_fast_attention(arch):
    encoder, forward, x = _encoder_and_forward(arch)
    fast_cls = FastAttention if arch == "vit" else FastTinyViTAttention
    add_adapters(encoder, "all")
    add_lora(encoder, targets=("qkv", "proj"))
    with torch.no_grad():
        for p in _peft_params(encoder):  # as after training: adapters and LoRA change the output
            p.normal_(0.0, 0.2)
    with torch.no_grad():
        stock = forward(x)
    assert use_fast_attention(encoder) == len(encoder_blocks(encoder))
    for block in encoder_blocks(encoder):
        assert type(block.attn.attn) is fast_cls
        assert isinstance(block.attn.attn.qkv, LoRALinear) and isinstance(block.attn.attn.proj, LoRALinear)
    with torch.no_grad():
        fast = forward(x)
        assert (fast - stock).abs().max() <= 1e-4
        # LoRA is really on the fast path: removing it changes the output
        for block in encoder_blocks(encoder):
            block.attn.attn.qkv.B.weight.zero_()
        assert (forward(x) - fast).abs().max() > 1e-3


def test_pretrained_state_dict_loads_into_adapted_encoder():
    pretrained = small_vit()
    adapted = small_vit()
    with torch.no_grad():
        for p in adapted.parameters():
            p.zero_()
    add_adapters(adapted, "last2")
    add_lora(adapted, targets=("qkv",))
    state = pretrained.state_dict()
    keys = list(state)
    result = adapted.load_state_dict(state, strict=False)
    assert list(state) == keys  # the caller's dict is not renamed
    assert result.unexpected_keys == []
    assert result.missing_keys and all(
        ".adapter." in k or k.endswith((".A.weight", ".B.weight")) for k in result.missing_keys
    )
    assert torch.equal(adapted.blocks[2].attn.attn.qkv.base.weight, pretrained.blocks[2].attn.qkv.weight)
    assert torch.equal(adapted.blocks[0].attn.rel_pos_h, pretrained.blocks[0].attn.rel_pos_h)
    assert torch.equal(adapted.blocks[2].mlp.mlp.lin1.bias, pretrained.blocks[2].mlp.lin1.bias)
    # and the adapted encoder's own state dict round-trips strictly
    copy.deepcopy(adapted).load_state_dict(adapted.state_dict())


def _trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_freeze_leaves_adapters_prompt_encoder_and_decoder():
    model = TinySam()
    add_adapters(model.image_encoder, "last2")
    freeze_for_peft(model)
    names = {n for n, _ in model.named_parameters()}
    expected = {
        n
        for n in names
        if n.startswith(("prompt_encoder.", "mask_decoder."))
        or (n.startswith(("image_encoder.blocks.1.", "image_encoder.blocks.2.")) and ".adapter." in n)
    }
    assert _trainable_names(model) == expected
    assert any(n.startswith("image_encoder.blocks.2.mlp.adapter.") for n in expected)

    freeze_for_peft(model, train_prompt_encoder=False)
    assert _trainable_names(model) == {n for n in expected if not n.startswith("prompt_encoder.")}
    freeze_for_peft(model, train_mask_decoder=False)
    assert _trainable_names(model) == {n for n in expected if not n.startswith("mask_decoder.")}


def test_freeze_with_lora_on_tinyvit():
    model = TinySam(small_tinyvit(eval_mode=True))
    add_lora(model.image_encoder, targets=("qkv", "proj"))
    freeze_for_peft(model, train_prompt_encoder=False, train_mask_decoder=False)
    trainable = _trainable_names(model)
    assert len(trainable) == 4 * 2 * 2  # 4 blocks x (qkv, proj) x (A, B)
    assert all(
        n.startswith("image_encoder.layers.") and n.endswith((".A.weight", ".B.weight")) for n in trainable
    )


def test_freeze_failures_are_loud():
    empty = TinySam()
    empty.image_encoder = nn.Identity()
    with pytest.raises(ConfigError, match="froze nothing") as err:
        freeze_for_peft(empty)
    assert err.value.fix

    with pytest.raises(ConfigError, match="nothing is trainable") as err:
        freeze_for_peft(TinySam(), train_prompt_encoder=False, train_mask_decoder=False)
    assert "add_adapters" in err.value.fix

    with pytest.raises(ConfigError, match="no image encoder at .encoder"):
        freeze_for_peft(TinySam(), encoder_attr="encoder")


def test_trainable_table_counts():
    model = TinySam()
    model.head = nn.Linear(3, 2)  # an extra part: counted as "other"
    add_adapters(model.image_encoder, "last2", ratio=0.25)
    add_lora(model.image_encoder, rank=4, blocks="0")
    freeze_for_peft(model, train_prompt_encoder=False)
    rows = {r.part: r for r in trainable_table(model)}
    assert list(rows) == [
        "image_encoder",
        "image_encoder (adapters)",
        "image_encoder (lora)",
        "prompt_encoder",
        "mask_decoder",
        "other",
        "total",
    ]
    hidden = 16
    one_adapter = DIM * hidden + hidden + hidden * DIM + DIM
    assert rows["image_encoder (adapters)"] == ParamRow(
        "image_encoder (adapters)", 2 * 2 * one_adapter, 2 * 2 * one_adapter
    )
    lora = 4 * DIM + 3 * DIM * 4
    assert rows["image_encoder (lora)"] == ParamRow("image_encoder (lora)", lora, lora)
    stock_encoder = sum(p.numel() for p in small_vit().parameters())
    assert rows["image_encoder"] == ParamRow("image_encoder", 0, stock_encoder)
    prompt = sum(p.numel() for p in model.prompt_encoder.parameters())
    assert rows["prompt_encoder"] == ParamRow("prompt_encoder", 0, prompt)
    decoder = sum(p.numel() for p in model.mask_decoder.parameters())
    assert rows["mask_decoder"] == ParamRow("mask_decoder", decoder, decoder)
    assert rows["other"] == ParamRow("other", 8, 8)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert rows["total"] == ParamRow("total", trainable, total)
    assert trainable == 2 * 2 * one_adapter + lora + decoder + 8

    text = format_trainable_table(list(rows.values()))
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[0].split() == ["part", "trainable", "total", "trained"]
    total_line = lines[-1]
    assert total_line.startswith("total") and f"{total / 1e6:.3f}M" in total_line
    assert f"{100 * trainable / total:.1f}%" in total_line
    assert "image_encoder (adapters)" in text


def test_table_without_peft_has_no_peft_rows():
    model = TinySam()
    parts = [r.part for r in trainable_table(model)]
    assert parts == ["image_encoder", "prompt_encoder", "mask_decoder", "total"]
