"""Method ``peft-sam`` end to end on the tiny SAM, its slim checkpoints, repeatable evaluation, and the benchmark."""

from __future__ import annotations

import json
import platform
import sys

import numpy as np
import pytest
import torch

from scsam_lite import config as C
from scsam_lite.bench import bench, format_bench, path_config
from scsam_lite.cli import main
from scsam_lite.data import load_dataset
from scsam_lite.errors import DownloadError
from scsam_lite.generalist import build_generalist
from scsam_lite.generalist.peft import freeze_for_peft
from scsam_lite.methods.base import load_model_state, model_state
from scsam_lite.methods.peft_sam import PEFTSAM
from scsam_lite.runs import load_checkpoint
from scsam_lite.runtime import setup
from scsam_lite.trainer import load_run, train


def _cfg(**over) -> C.Config:
    base = {"train.iterations": 20, "train.val_every": 10}
    return C.build_config("quick", {**base, **over}, method="peft-sam")


@pytest.mark.slow
def test_peft_sam_trains_and_evaluates_sam(tmp_path):
    res = train(_cfg(), tmp_path / "run", verbose=False)
    assert set(res.metrics) == {"sam"} and 0.0 <= res.metrics["sam"]["dice"] <= 1.0
    hist = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [10, 20] and "sam" in hist[0]["val_dice"]
    sam = res.method.models["sam"]
    trainable = {n for n, p in sam.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(("prompt_encoder", "mask_decoder")) or "adapter" in n for n in trainable
    )
    # the evaluation re-runs identically from the saved run (seeded ground-truth prompts)
    method, data, cfg = load_run(tmp_path / "run")
    from scsam_lite.evaluation import evaluate

    assert evaluate(method, data, "test")["sam"]["dice"] == pytest.approx(
        res.metrics["sam"]["dice"], abs=1e-6
    )


def test_eval_prompts_depend_on_the_image_not_the_batch():
    cfg = _cfg()
    data = load_dataset("synthetic-polyp")
    m = PEFTSAM(cfg, data, setup(0, "cpu", verbose=False))
    idx = data.splits["test"][:6]
    images = torch.from_numpy(data.images[idx]).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(data.masks[idx]).long()
    m.train(False)
    whole = m.predict(images, masks=masks, index=idx)["sam"]
    part = m.predict(images[3:], masks=masks[3:], index=idx[3:])["sam"]
    assert torch.allclose(whole[3:], part, atol=1e-5)
    shifted = m.predict(images[3:], masks=masks[3:], index=idx[3:] + 1)["sam"]
    assert not torch.allclose(part, shifted)  # other seeds, other points, another output


def test_pretrained_models_checkpoint_only_what_trains():
    torch.manual_seed(0)
    g = build_generalist("tiny")
    from scsam_lite.generalist.adapters import add_adapters

    add_adapters(g.image_encoder)
    freeze_for_peft(g)
    g.source = "pretend-pretrained.pth"  # frozen weights would come from that file at rebuild
    state = model_state(g)
    frozen = [n for n, p in g.named_parameters() if not p.requires_grad]
    assert frozen and not any(k in state for k in frozen)
    assert all(k in state for k, p in g.named_parameters() if p.requires_grad)
    with torch.no_grad():
        for p in g.parameters():
            if p.requires_grad:
                p.add_(1.0)
    fresh_state = {k: v.clone() for k, v in g.state_dict().items()}
    load_model_state(
        g, {k: fresh_state[k] - 1.0 if k in state and "adapter" in k else fresh_state[k] for k in state}
    )
    trained_key = next(k for k in state if "adapter" in k)
    assert torch.allclose(g.state_dict()[trained_key], fresh_state[trained_key] - 1.0)
    with pytest.raises(RuntimeError, match="missing"):
        load_model_state(g, {k: v for k, v in state.items() if k != trained_key})
    g.source = "random"
    assert set(model_state(g)) == set(g.state_dict())  # random weights cannot be rebuilt: keep them all


@pytest.mark.slow
def test_bench_times_fast_and_stock_paths(tmp_path, capsys):
    cfg = C.build_config("quick", method="peft-sam")
    stock = path_config(cfg, "stock")
    assert stock.train.precision == "fp32" and not stock.generalist.fast_attention
    assert cfg.generalist.fast_attention  # the fast path is the config itself
    out = tmp_path / "bench.json"
    res = bench(cfg, steps=2, warmup=1, out=out)
    assert [r["path"] for r in res["rows"]] == ["fast", "stock"]
    assert all(r["ms_per_step"] > 0 and r["images_per_s"] > 0 for r in res["rows"])
    assert res["rows"][1]["anomaly_detection"] and res["rows"][1]["attention"] == "stock / stock decoder"
    assert res["speedup"] == pytest.approx(
        res["rows"][1]["ms_per_step"] / res["rows"][0]["ms_per_step"], rel=0.02
    )
    saved = json.loads(out.read_text())
    assert saved["config"]["train"]["method"] == "peft-sam" and saved["rows"] == res["rows"]
    assert "speed-up of fast over stock" in format_bench(res)


@pytest.mark.slow
def test_bench_cli_times_the_decoder_before_and_after_with_stored_embeddings(tmp_path, capsys, monkeypatch):
    """`--path fast,stock-decoder,stock-allocator,stock-cpu`: the co-training step with segment-anything's decoder
    and with the fast one, with glibc's default allocator, and with neither speed-up, in one call; only the timed
    batches' images are embedded."""
    monkeypatch.setenv("SCSAM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "b.json"
    paths = "fast,stock-decoder,stock-allocator,stock-cpu"
    args = ["bench", "--method", "sc-sam", "--path", paths, "--steps", "1", "--warmup", "1"]
    args += ["--set", "generalist.peft=none", "--set", "generalist.embedding_cache=true", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "speed-up of the fast mask decoder" in printed
    res = json.loads(out.read_text())
    assert [r["path"] for r in res["rows"]] == paths.split(",")
    decoders = [r["attention"].split(" / ")[1] for r in res["rows"]]
    assert decoders == ["fast decoder", "stock decoder", "fast decoder", "stock decoder"]
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert [r["allocator"] for r in res["rows"]] == ["keep", "keep", "return", "return"]
    assert res["speedup_decoder"] > 0 and res["speedup_allocator"] > 0 and res["speedup_cpu"] > 0
    assert "reusing freed memory" in printed and "all CPU speed-ups" in printed
    (folder,) = (tmp_path / "cache" / "embeddings").iterdir()
    stored = sum(len(np.load(f)) for f in folder.glob("shard-*.index.npy"))
    assert 0 < stored <= 2 * 2 * 12  # two paths, two batches of 6 + 6 at most: not the whole dataset
    assert main(["bench", "--path", "fast,warp", "--steps", "1"]) == 2
    assert "unknown benchmark path 'warp'" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_cli_unet(tmp_path, capsys):
    assert (
        main(
            ["bench", "--method", "unet", "--steps", "1", "--warmup", "1", "--out", str(tmp_path / "b.json")]
        )
        == 0
    )
    assert "ms/step" in capsys.readouterr().out and (tmp_path / "b.json").is_file()


def test_bench_offline_sam_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCSAM_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)

    def offline(*a, **k):
        raise DownloadError("could not reach the server", "connect")

    monkeypatch.setattr("scsam_lite.download.core.download", offline)
    args = ["bench", "--generalist", "sam_vit_b", "--set", "generalist.image_size=64", "--steps", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sam-vit-b" in err and "lite_medsam" in err


@pytest.mark.slow
def test_peft_sam_with_random_vit_b_architecture_runs_a_step(tmp_path):
    """The real ViT-B architecture (random weights, asked for explicitly) at a small size trains one step."""
    cfg = _cfg(
        **{
            "generalist.name": "sam_vit_b",
            "generalist.pretrained": False,
            "generalist.image_size": 64,
            "generalist.adapter_blocks": "last2",
            "train.iterations": 1,
            "train.val_every": 1,
            "data.batch_labeled": 2,
        }
    )
    res = train(cfg, tmp_path / "vitb", verbose=False)
    assert np.isfinite(res.metrics["sam"]["dice"])
    keys = set(load_checkpoint(tmp_path / "vitb" / "checkpoints" / "best.pt")["method"]["models"]["sam"])
    adapted = {k.split(".")[2] for k in keys if ".adapter." in k}
    assert adapted == {"10", "11"}  # "last2" of ViT-B's 12 blocks


@pytest.mark.slow
def test_peft_sam_evaluated_with_unet_prompts(tmp_path, capsys):
    """issue 4: PEFT-SAM is also evaluated with prompts from a U-Net's predictions instead of the ground truth."""
    train(_cfg(), tmp_path / "sam", verbose=False)
    unet_cfg = C.build_config("quick", {"train.iterations": 10, "train.val_every": 10}, method="unet")
    train(unet_cfg, tmp_path / "unet", verbose=False)
    assert main(["evaluate", str(tmp_path / "sam"), "--prompts-from", str(tmp_path / "unet")]) == 0
    with_unet = json.loads((tmp_path / "sam" / "metrics_test_best_prompts_from_unet.json").read_text())
    with_gt = json.loads((tmp_path / "sam" / "metrics.json").read_text())
    assert set(with_unet) == {"sam"} and with_unet["sam"]["dice"] != with_gt["sam"]["dice"]
    # the U-Net's masks really are the prompt source: prompting with the ground truth as "U-Net" gives metrics.json
    from scsam_lite.evaluation import evaluate

    method, data, _ = load_run(tmp_path / "sam")
    gt = data.masks[data.splits["test"]]
    assert evaluate(method, data, "test", prompt_masks=gt)["sam"]["dice"] == pytest.approx(
        with_gt["sam"]["dice"], abs=1e-6
    )
    prostate = C.build_config(
        "quick",
        {"train.iterations": 10, "train.val_every": 10, "data.dataset": "synthetic-prostate"},
        method="unet",
    )
    train(prostate, tmp_path / "other", verbose=False)
    assert main(["evaluate", str(tmp_path / "sam"), "--prompts-from", str(tmp_path / "other")]) == 2
    assert "other data" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_rounds_alternate_paths_and_report_the_median(tmp_path):
    cfg = C.build_config("quick", method="unet")
    res = bench(
        cfg, steps=1, warmup=0, paths=("fast", "stock"), repeat=3, out=tmp_path / "b.json", verbose=False
    )
    assert [r["path"] for r in res["rounds"]] == ["fast", "stock"] * 3
    for row in res["rows"]:
        mine = sorted(r["ms_per_step"] for r in res["rounds"] if r["path"] == row["path"])
        assert row["ms_per_step"] == mine[1]


@pytest.mark.slow
def test_bench_counts_the_work_of_a_step_and_the_two_pass_decoder_doubles_its_share(tmp_path):
    """The counted FLOPs are the step's own: SAM's two-pass output runs the mask decoder twice, so its step counts
    more work than the one-pass step of the same config, and the floor line uses the measured matmul rate."""
    base = {"generalist.peft": "none", "train.precision": "fp32"}
    one = bench(
        C.build_config("quick", base, method="sc-sam"),
        steps=1,
        warmup=1,
        paths=("fast",),
        out=tmp_path / "a.json",
        verbose=False,
    )
    two = bench(
        C.build_config("quick", {**base, "cotrain.sam_output": "two-pass"}, method="sc-sam"),
        steps=1,
        warmup=1,
        paths=("fast",),
        out=tmp_path / "b.json",
        verbose=False,
    )
    g1, g2 = one["rows"][0]["gflop_per_step"], two["rows"][0]["gflop_per_step"]
    assert 0 < g1 < g2
    assert one["matmul_gflop_per_s"] > 0
    floor = 1000 * g1 / one["matmul_gflop_per_s"]
    assert f"the counted work alone takes {floor:.0f} ms" in format_bench(one)
    # the count by part: outermost modules plus the rest add up to the total; a second SAM pass adds work to
    # the generalist (here run whole, encoder included: no stored embeddings), none to the U-Net
    p1, p2 = one["rows"][0]["gflop_by_part"], two["rows"][0]["gflop_by_part"]
    assert {"UNet", "Generalist", "elsewhere"} <= set(p1)
    assert sum(p1.values()) == pytest.approx(g1, rel=1e-3)
    assert p2["UNet"] == p1["UNet"] and p2["Generalist"] > p1["Generalist"]
    assert "counted work by part: " in format_bench(one)
    assert "the parts overlap" not in format_bench(one)
    # parts that add up to more than the total (torch's tracker counting backward work twice) are said to overlap
    import copy

    doubled = copy.deepcopy(one)
    doubled["rows"][0]["gflop_by_part"]["elsewhere"] = -0.5 * g1
    assert "the parts overlap" in format_bench(doubled)
