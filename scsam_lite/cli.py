"""The ``scsam-lite`` command line.

Every subcommand is a thin shell over a library function, so a notebook and the command line run the same code.
A :class:`~scsam_lite.errors.ScsamError` is printed as one message with its fix (exit code 2), never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import typing
from pathlib import Path

from . import config as C
from .errors import ScsamError

#: the presets (also the notebooks' profiles), for help texts and choices
_PRESETS = " | ".join(C.PRESETS)

EPILOG = """examples:
  scsam-lite train --preset quick --out runs/quickstart
  scsam-lite train --method unet --dataset kvasir-seg --data-root ~/data --labeled 0.05 --preset classroom --out runs/kvasir-unet-5
  scsam-lite train --out runs/kvasir-unet-5 --resume        # continue after a disconnect
  scsam-lite evaluate runs/kvasir-unet-5 --split test
  scsam-lite evaluate runs/kvasir-unet-5 --dataset cvc-clinicdb --data-root ~/data --split all
  scsam-lite download kvasir-seg --root ~/data
"""


def _parser() -> argparse.ArgumentParser:
    """The whole command line; each sub-command's flags are built beside its handler (in --help's order)."""
    p = argparse.ArgumentParser(
        prog="scsam-lite",
        description="SC-SAM for teaching: train, evaluate and download for the specialist/generalist co-training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_train_parser,
        _add_evaluate_parser,
        _add_compare_parser,
        _add_download_parser,
        _add_bench_parser,
        _add_sweep_parser,
        _add_notebooks_parser,
        _add_site_parser,
        _add_reference_parser,
        _add_results_parser,
        _add_records_parser,
        _add_datasets_parser,
        _add_config_parser,
    ):
        add(sub)
    return p


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    """``train``: the method, data and labels, any config field, and the run folder to create or resume."""
    p = sub.add_parser(
        "train",
        help="train a method and write a run directory",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train METHOD on DATASET; writes config.json, history.jsonl, metrics.json and "
        "checkpoints/{last,best}.pt to --out and appends a row to the results registry beside it.",
    )
    p.add_argument("--method", help="training method (default unet); see `scsam-lite config --list`")
    p.add_argument("--dataset", help="dataset name (default synthetic-polyp); see `scsam-lite datasets`")
    p.add_argument("--data-root", help="folder holding the datasets (default: $SCSAM_DATA_ROOT)")
    p.add_argument(
        "--labeled",
        type=float,
        help="labeled share: a ratio like 0.05, or a count like 44 (cases for volumes)",
    )
    p.add_argument(
        "--preset",
        default=None,
        choices=list(C.PRESETS),
        help=f"{_PRESETS} (default quick; a resumed run keeps its own)",
    )
    p.add_argument("--seed", type=int, help="training seed (default 0)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override any config field, e.g. --set train.lr=0.02 (repeatable)",
    )
    p.add_argument(
        "--out", help="run directory to create or resume (default: a new runs/DATASET-METHOD-TIME)"
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt if it exists")
    p.add_argument("--quiet", action="store_true", help="print only the final metrics")


def _train(args: argparse.Namespace) -> int:
    from . import config as C
    from .errors import ConfigError
    from .runs import RunDir
    from .trainer import default_run_dir, train

    fields = {
        "train.method": args.method,
        "data.dataset": args.dataset,
        "data.data_root": args.data_root,
        "data.labeled": args.labeled,
        "train.seed": args.seed,
    }
    overrides = C.parse_overrides(args.overrides)
    if args.out is None:
        if args.resume:
            raise ConfigError("--resume needs the --out of the run to continue", "add --out RUN_DIR")
        named = C.build_config(
            args.preset or "quick", overrides, **fields
        )  # the dataset the preset trains on
        args.out = str(default_run_dir(named.data.dataset, named.train.method))
    run = RunDir(args.out)
    if args.resume and run.exists():
        # a resumed run keeps its own settings; anything given again must agree (checked by the trainer)
        cfg = C.config_from_dict(run.read_config()["config"])
        if args.preset and args.preset != cfg.preset:
            cfg = C.build_config(args.preset)
        for k, v in {**{k: v for k, v in fields.items() if v is not None}, **overrides}.items():
            C.set_value(cfg, k, v)
    else:
        cfg = C.build_config(args.preset or "quick", overrides, **fields)
    if not args.quiet:
        print(f"config ({cfg.preset} preset, hash {C.config_hash(cfg)}):\n{cfg.pretty()}")
    command = "scsam-lite " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = train(cfg, args.out, resume=args.resume, verbose=not args.quiet, command=command)
    print(f"run directory: {result.run_dir}")
    if args.quiet:
        from .runs import read_json
        from .trainer import format_metrics

        print(format_metrics(read_json(Path(args.out) / "metrics.json"), "test metrics"))
    return 0


def _evaluate_threshold(overrides: list[str]) -> int | None:
    """``data.mask_threshold`` from ``evaluate --set`` (the only setting of the scored data one may change)."""
    from . import config as C
    from .errors import ConfigError

    probe = C.Config()
    for key, value in C.parse_overrides(overrides).items():
        if key not in ("data.mask_threshold", "mask_threshold"):
            raise ConfigError(
                f"evaluate takes --set data.mask_threshold=N only, not {key}",
                "the model's settings are the run's own; train another run to change them",
            )
        C.set_value(probe, "data.mask_threshold", value)
    return probe.data.mask_threshold


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """``evaluate``: a finished run scored on a split of its dataset or another, with its chosen weights."""
    p = sub.add_parser(
        "evaluate", help="evaluate a run's best checkpoint on a split (of its dataset or another)"
    )
    p.add_argument("run_dir", help="a run directory written by `scsam-lite train`")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument(
        "--dataset",
        help="score on another dataset at the run's resolution, e.g. a kvasir-seg run on cvc-clinicdb; writes "
        "metrics_DATASET_SPLIT_CHECKPOINT[_items].{json,csv} beside the run's own",
    )
    p.add_argument(
        "--data-root",
        help="folder holding the datasets (default: $SCSAM_DATA_ROOT, else the folder the run was trained from)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="data.mask_threshold=N: threshold the scored dataset's masks at N",
    )
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--selection",
        choices=typing.get_args(C.Checkpoints),
        help="sc-sam: test both models from SAM's best step (joint) or the U-Net from its own best step "
        "(separate), whatever cotrain.checkpoints the run was trained with",
    )
    p.add_argument(
        "--prompts-from",
        metavar="UNET_RUN",
        help="prompt SAM (peft-sam, or sc-sam's SAM alone) with this run's U-Net predictions instead of the "
        "ground truth (peft-sam) or its own U-Net (sc-sam)",
    )


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from .evaluation import evaluate_items, summarize_items
    from .runs import write_item_metrics, write_json
    from .trainer import format_metrics, load_run

    threshold = _evaluate_threshold(args.overrides)
    where = dict(dataset=args.dataset, data_root=args.data_root, mask_threshold=threshold)
    method, data, cfg = load_run(
        args.run_dir, checkpoint=args.checkpoint, device=args.device, selection=args.selection, **where
    )
    other = data.name != cfg.data.dataset
    if other:
        print(f"scoring {args.run_dir} ({cfg.data.dataset}) on {data.summary()}")
    if args.split == "all":
        data.splits["all"] = np.arange(len(data), dtype=np.int64)
    prompt_masks, suffix = None, f"_{args.selection}" if args.selection else ""
    if args.prompts_from:
        from .errors import ConfigError
        from .evaluation import unet_prompt_masks

        if not method.accept_prompt_masks():
            raise ConfigError(
                f"{args.run_dir} is a {cfg.train.method} run: it has no SAM to prompt",
                "use --prompts-from with a peft-sam or sc-sam run",
            )
        unet_method, unet_data, _ = load_run(args.prompts_from, device=args.device, **where)
        if (unet_data.name, unet_data.resolution, unet_data.ids) != (data.name, data.resolution, data.ids):
            raise ConfigError(
                f"{args.prompts_from} was trained on other data ({unet_data.name}, {unet_data.resolution} px) "
                f"than {args.run_dir} ({data.name}, {data.resolution} px)",
                "give a U-Net run on the same dataset and resolution",
            )
        prompt_masks = unet_prompt_masks(unet_method, data, args.split, cfg.train.eval_batch_size)
        # one file per prompt source, so prompts from several U-Nets can be compared side by side
        suffix += f"_prompts_from_{Path(args.prompts_from).resolve().name}"
    items = evaluate_items(method, data, args.split, cfg.train.eval_batch_size, prompt_masks)
    metrics = summarize_items(items)
    scored = f"{data.name}_" if other else ""  # scored on another dataset: named, beside the run's own files
    out = Path(args.run_dir) / f"metrics_{scored}{args.split}_{args.checkpoint}{suffix}.json"
    write_item_metrics(out.with_name(out.stem + "_items.csv"), items)  # per image, for scsam-lite compare
    write_json(out, metrics)
    title = f"{scored.replace('_', ' ')}{args.split} metrics ({args.checkpoint} checkpoint) -> {out}"
    print(format_metrics(metrics, title))
    return 0


def _add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """``compare``: two runs' per-image scores and how the paired bootstrap resamples them."""
    p = sub.add_parser(
        "compare",
        help="compare two runs image by image on the same test split (paired bootstrap interval)",
        description="A - B per test image: mean difference, 95%% bootstrap interval, images won each way and "
        "the Wilcoxon p-value. It measures how much the verdict depends on the test images drawn, not "
        "run-to-run noise: compare several seeds for that.",
    )
    p.add_argument("a", help="run directory (its metrics_items.csv) or a *_items.csv file from `evaluate`")
    p.add_argument("b", help="the same for the other side")
    p.add_argument("--model-a", help="unet, sam or agreement (default: the file's only model, else sam)")
    p.add_argument("--model-b", help="the same for B")
    p.add_argument("--metric", default="dice", choices=["dice", "iou", "hd95", "asd"])
    p.add_argument("--boot", type=int, default=10_000, help="bootstrap resamples (default 10,000)")
    p.add_argument(
        "--ignore-groups",
        action="store_true",
        help="resample single images even where the files give their groups (videos): treats near-duplicate "
        "frames as independent, so the interval is too narrow",
    )
    p.add_argument("--json", metavar="FILE", help="also write the comparison to FILE")


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs
    from .runs import write_json

    result = compare_runs(
        args.a,
        args.b,
        model_a=args.model_a,
        model_b=args.model_b,
        metric=args.metric,
        n_boot=args.boot,
        use_groups=not args.ignore_groups,
    )
    print(result)
    if args.json:
        write_json(args.json, result.to_dict())
    return 0


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    """``bench``: what to time (method, generalist, paths) and for how many steps."""
    p = sub.add_parser(
        "bench",
        help="time training steps: the fast path vs the stock (reference) path",
        description="Times whole training steps (forward, backward, optimiser) after warm-up with synchronised "
        "timers, for the fast path (autocast, 4-D SDPA attention, optional compile) and the stock path (fp32, "
        "stock attention, anomaly detection on), and prints ms/step, images/s, peak GPU memory and the ratio.",
    )
    p.add_argument("--method", default="peft-sam", help="method to time (default peft-sam)")
    p.add_argument("--generalist", help="sam_vit_b | lite_medsam | tiny | ... (default: the preset's)")
    p.add_argument("--preset", default="quick", choices=list(C.PRESETS), help=f"{_PRESETS} (default quick)")
    p.add_argument("--dataset", help="dataset whose images are used (default: the preset's)")
    p.add_argument("--data-root", help="folder holding the datasets (default: $SCSAM_DATA_ROOT)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    p.add_argument(
        "--repeat", type=int, default=1, help="rounds of all paths, alternating; the median round is reported"
    )
    p.add_argument(
        "--path",
        default="both",
        help="which paths to time, comma-separated: fast, stock, stock-decoder (the fast path with "
        "segment-anything's own mask decoder, i.e. before generalist.fast_decoder), stock-allocator (glibc "
        "returning freed memory), stock-cpu (none of the CPU speed-ups); both = fast,stock (default)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the image encoder on the fast path")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="random SAM weights (speed does not depend on them; no checkpoint needed)",
    )
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=[])
    p.add_argument(
        "--out", help="JSON file for the results (default runs/bench/bench-METHOD-GENERALIST-TIME.json)"
    )


def _bench(args: argparse.Namespace) -> int:
    from . import config as C
    from .bench import bench

    fields = {
        "train.method": args.method,
        "generalist.name": args.generalist,
        "data.dataset": args.dataset,
        "data.data_root": args.data_root,
        "generalist.compile": True if args.compile else None,
        "generalist.pretrained": False if args.random_init else None,
    }
    cfg = C.build_config(args.preset, C.parse_overrides(args.overrides), **fields)
    paths = (
        ("fast", "stock")
        if args.path == "both"
        else tuple(p.strip() for p in args.path.split(",") if p.strip())
    )
    command = "scsam-lite " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    bench(
        cfg,
        steps=args.steps,
        warmup=args.warmup,
        paths=paths,
        repeat=args.repeat,
        out=args.out,
        command=command,
    )
    return 0


def _add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    """``sweep``: the grid, its seeds and variants, where it runs (here or Slurm) and the Slurm resources."""
    p = sub.add_parser(
        "sweep",
        help="run an ablation grid (skips configs already in the results registry, resumes interrupted runs)",
    )
    p.add_argument(
        "grid",
        nargs="?",
        help="rampup | backbone | prompts | prompt-type | labels | peft | tokens | fidelity",
    )
    p.add_argument("--preset", default="quick", choices=list(C.PRESETS), help=f"{_PRESETS} (default quick)")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    p.add_argument("--method", help="method whose ablation it is (default sc-sam)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=[])
    p.add_argument("--out", help="folder of the sweep's runs and registry (default runs/sweeps)")
    p.add_argument(
        "--splits", action="store_true", help="each seed also draws its own labeled split (data.split_seed)"
    )
    p.add_argument(
        "--variants", help="comma-separated variants to keep, by folder name (default: all); see --list"
    )
    p.add_argument("--dry-run", action="store_true", help="print what would run")
    p.add_argument(
        "--launcher",
        default="local",
        choices=["local", "slurm", "submitit-local"],
        help="local: here, one run after the other (default); slurm: one job per missing run through submitit "
        "(returns once submitted); submitit-local: the same jobs as local processes",
    )
    p.add_argument("--status", action="store_true", help="what each run is: done, running, failed (log tail)")
    p.add_argument("--wait", action="store_true", help="slurm/submitit-local: wait until the jobs end")
    p.add_argument("--partition", help="slurm: partition (default: the cluster's)")
    p.add_argument("--gpus", type=int, default=1, help="slurm: GPUs per job (default 1)")
    p.add_argument("--cpus", type=int, default=4, help="slurm: CPUs per job (default 4)")
    p.add_argument("--mem-gb", type=int, default=16, help="slurm: memory per job in GB (default 16)")
    p.add_argument(
        "--time-min",
        type=int,
        default=240,
        help="slurm: time limit per job in minutes (default 240); a job cut off is requeued and resumes",
    )
    p.add_argument(
        "--array-parallelism", type=int, default=8, help="slurm: jobs of the sweep at once (default 8)"
    )
    p.add_argument("--account", help="slurm: account to charge")
    p.add_argument("--list", action="store_true", help="list the grids and their variants")


def _sweep(args: argparse.Namespace) -> int:
    from . import config as C
    from .errors import ConfigError
    from .sweeps import GRIDS, folder_name, sweep, sweep_table

    if args.list or not args.grid:
        for name in GRIDS.names():
            g = GRIDS.get(name)
            print(f"{name:12s} {g.description}")
            for v in g.variants:  # the folder name is what --variants takes (a label may hold a comma)
                print(f"{'':12s} {folder_name(v.label):32s} {v.label}")
        return 0
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(
            f"--seeds {args.seeds!r} is not a list of integers", "write e.g. --seeds 0,1,2"
        ) from None
    kw = dict(
        preset=args.preset,
        seeds=seeds,
        overrides=C.parse_overrides(args.overrides),
        out=args.out,
        method=args.method,
        splits=args.splits,
        variants=[v.strip() for v in args.variants.split(",")] if args.variants else None,
    )
    if args.status:
        from .launchers import format_status, sweep_status
        from .sweeps import plan

        print(format_status(sweep_status(plan(args.grid, **kw))))
        return 0
    from .launchers import SlurmOptions

    slurm = SlurmOptions(
        partition=args.partition,
        gpus=args.gpus,
        cpus=args.cpus,
        mem_gb=args.mem_gb,
        time_min=args.time_min,
        array_parallelism=args.array_parallelism,
        extra={"account": args.account} if args.account else None,
    )
    sweep(args.grid, dry_run=args.dry_run, launcher=args.launcher, slurm=slurm, wait=args.wait, **kw)
    if args.launcher != "local" and not args.wait:
        print(f"submitted; `scsam-lite sweep {args.grid} --status` (same options) shows how they do")
        return 0
    if not args.dry_run:
        table = sweep_table(args.grid, **kw)
        summary = table.groupby(["order", "variant", "model"])["dice"].agg(["mean", "std", "count"])
        print(summary.droplevel("order").round(4).to_string())
    return 0


def _add_notebooks_parser(sub: argparse._SubParsersAction) -> None:
    """``notebooks``: the profile and which notebooks to execute, and where they are written."""
    p = sub.add_parser(
        "notebooks",
        help="run the course notebooks 01-05 in order (papermill) and write them with a summary",
    )
    p.add_argument("--profile", default="quick", choices=list(C.PRESETS), help=f"{_PRESETS} (default quick)")
    p.add_argument("--data-root", help="folder holding the real datasets (default: $SCSAM_DATA_ROOT)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/notebooks", help="where executed notebooks, runs and summary go")
    p.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks, e.g. --only 01 03")
    p.add_argument("--notebooks", help="folder of the notebooks (default: the repository's notebooks/)")


def _notebooks(args: argparse.Namespace) -> int:
    from .runall import run_notebooks

    run_notebooks(
        args.profile,
        out=args.out,
        data_root=args.data_root,
        seed=args.seed,
        notebooks=args.notebooks,
        only=args.only,
    )
    return 0


def _add_site_parser(sub: argparse._SubParsersAction) -> None:
    """``site``: which notebooks the course site shows (executed here, or given) and where it is written."""
    p = sub.add_parser(
        "site",
        help="build the course as a static site: notebooks executed, docs pages, Sphinx with warnings as errors",
    )
    p.add_argument(
        "--profile", choices=list(C.PRESETS), help="default: lab when Kvasir-SEG is found, else quick"
    )
    p.add_argument("--data-root", help="folder holding the real datasets (default: $SCSAM_DATA_ROOT)")
    p.add_argument("--out", default="build/site", help="executed notebooks, staged sources and html/ go here")
    p.add_argument(
        "--executed", metavar="DIR", help="notebooks executed before (or `notebooks` for the committed ones)"
    )


def _site(args: argparse.Namespace) -> int:
    from .site import build

    build(args.out, profile=args.profile, executed=args.executed, data_root=args.data_root)
    return 0


def _add_reference_parser(sub: argparse._SubParsersAction) -> None:
    """``reference``: an action on the committed reference runs and what it needs."""
    p = sub.add_parser(
        "reference",
        help="the reference runs committed with the package: list, check, export, re-run",
        description="Reference runs are the project's own finished runs, committed with their records (and, for "
        "the runs the notebooks load, fp16 weights of the parts that train) so a notebook can load them instead "
        "of training.",
    )
    p.add_argument("action", choices=["list", "check", "export", "rerun"])
    p.add_argument(
        "name", nargs="?", help="a reference run, e.g. lab/sc-sam-s0 (export: the name to give it)"
    )
    p.add_argument("--run", help="export: the finished run directory to export")
    p.add_argument("--no-weights", action="store_true", help="export: records only")
    p.add_argument("--no-probes", action="store_true", help="export: leave sc-sam's probe snapshots out")
    p.add_argument("--out", help="rerun: the run directory to train into")
    p.add_argument("--root", help="folder of reference runs (default: the package's)")


def _reference(args: argparse.Namespace) -> int:
    from . import reference as R
    from .errors import ConfigError

    if args.action == "list":
        for ref in R.reference_runs(args.root):
            dice = "  ".join(f"{m} {v['dice']:.3f}" for m, v in ref.metrics.items())
            weights = "weights" if ref.has_weights else "records"
            print(f"{ref.name:32s} {ref.config_hash}  {weights:7s}  test Dice {dice}  ({ref.cost()})")
        return 0
    if args.action == "check":
        refs = [R.get_reference(args.name, args.root)] if args.name else R.reference_runs(args.root)
        problems = [p for ref in refs for p in R.check_reference(ref)]
        print("\n".join(problems) or f"{len(refs)} reference run(s): records consistent")
        return 1 if problems else 0
    if not args.name:
        raise ConfigError(f"`scsam-lite reference {args.action}` needs a NAME", "e.g. lab/sc-sam-s0")
    if args.action == "export":
        if not args.run:
            raise ConfigError("export needs --run RUN_DIR", "give the finished run directory to export")
        ref = R.export_reference(
            args.run, args.name, weights=not args.no_weights, probes=not args.no_probes, root=args.root
        )
        print(f"exported {args.run} -> {ref.path}")
        return 0
    if not args.out:
        raise ConfigError("rerun needs --out RUN_DIR", "give a new folder to train into")
    ref = R.get_reference(args.name, args.root)
    result = R.rerun(ref, args.out)
    print(
        f"re-ran {ref.name} into {result.run_dir}; compare it with: scsam-lite compare {result.run_dir} {ref.path}"
    )
    return 0


def _add_results_parser(sub: argparse._SubParsersAction) -> None:
    """``results``: where the results page (and the README's table) is written or checked."""
    p = sub.add_parser(
        "results",
        help="render the results page (docs/results.md) from the reference runs' records",
    )
    p.add_argument("--write", metavar="PATH", help="write the page there (default: print it)")
    p.add_argument("--check", metavar="PATH", help="fail when the page at PATH differs from the records")
    p.add_argument(
        "--readme", metavar="README", help="also write (or with --check, check) its short results table"
    )
    p.add_argument("--root", help="folder of reference runs (default: the package's)")


def _results(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .results import readme_table, render_results_page, with_readme_table
    from .runs import atomic_write_text

    page = render_results_page(args.root)
    readme = Path(args.readme).read_text() if args.readme else None
    new_readme = with_readme_table(readme, readme_table(args.root)) if readme is not None else None
    if args.check:
        stale = [args.check] if not Path(args.check).is_file() or Path(args.check).read_text() != page else []
        stale += [args.readme] if readme is not None and readme != new_readme else []
        if stale:
            fix = f"scsam-lite results --write {args.check}" + (
                f" --readme {args.readme}" if args.readme else ""
            )
            print(f"{' and '.join(stale)} differ(s) from the records: run `{fix}`")
            return 1
        print(f"{args.check}{' and ' + args.readme if args.readme else ''} agree with the records")
        return 0
    if args.write:
        atomic_write_text(args.write, page)
        print(f"wrote {args.write}")
    if new_readme is not None:
        atomic_write_text(args.readme, new_readme)
        print(f"updated the results table of {args.readme}")
    if not args.write and new_readme is None:
        print(page, end="")
    return 0


def _add_records_parser(sub: argparse._SubParsersAction) -> None:
    """``records``: which cited records to make again, and the data the lab ones need."""
    p = sub.add_parser(
        "records",
        help="regenerate the records the documentation cites (docs/records/, docs/bench/)",
        description="Runs what each record measured again on this machine and writes it atomically with its "
        "commit, machine and date. Without NAME: every record that can be made (about an hour on a 2-core CPU).",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="records to make, e.g. quick-train (see --list)")
    p.add_argument("--list", action="store_true", help="each record, what it costs, and whether it is stale")
    p.add_argument(
        "--data-root", help="folder holding kvasir-seg/, for the lab records (default: $SCSAM_DATA_ROOT)"
    )
    p.add_argument("--work", help="where their runs go, in a new dated folder (default runs/records)")


def _records(args: argparse.Namespace) -> int:
    from .records import list_records, regenerate

    if args.list:
        print(list_records())
        return 0
    regenerate(args.names, data_root=args.data_root, work=args.work)
    return 0


def _add_download_parser(sub: argparse._SubParsersAction) -> None:
    """``download``: a dataset or checkpoint and where it goes; the epilog lists the sources."""
    from .download import help_text

    p = sub.add_parser(
        "download",
        help="download a dataset or SAM checkpoint (sha256 checked, resumable)",
        epilog=help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="kvasir-seg | cvc-clinicdb | promise12 | sam-vit-b | sam-vit-l | sam-vit-h")
    p.add_argument(
        "--root",
        help="where to put it (datasets default to $SCSAM_DATA_ROOT, checkpoints to $SCSAM_CHECKPOINT_DIR)",
    )
    p.add_argument("--source", help="official | kaggle | zenodo (default: the dataset's own)")
    p.add_argument("--force", action="store_true", help="download again even if a complete copy is there")


def _download(args: argparse.Namespace) -> int:
    from .download import download

    path = download(args.name, args.root, source=args.source, force=args.force)
    print(f"ready: {path}")
    return 0


def _add_datasets_parser(sub: argparse._SubParsersAction) -> None:
    """``datasets``: the data root to look in."""
    p = sub.add_parser("datasets", help="list the datasets and where each is found")
    p.add_argument("--data-root", help="folder holding the datasets (default: $SCSAM_DATA_ROOT)")


def _datasets(args: argparse.Namespace) -> int:
    from .data import DATASETS
    from .data.discover import find_existing
    from .paths import data_root

    root = data_root(args.data_root)
    origin = "--data-root" if args.data_root else "SCSAM_DATA_ROOT"
    print(
        f"data root: {f'{root} (from {origin})' if root else '(not set: --data-root DIR or SCSAM_DATA_ROOT)'}"
    )
    for name in DATASETS.names():
        spec = DATASETS.get(name)
        where = (
            "built in"
            if not spec.needs_root
            else (find_existing(name, root) or f"not found ({spec.download_hint})")
        )
        print(f"  {name:20s} {spec.description}\n  {'':20s} {where}")
    return 0


def _add_config_parser(sub: argparse._SubParsersAction) -> None:
    """``config``: the preset and overrides to print, or the list of what exists."""
    p = sub.add_parser("config", help="print a preset's full config (what a run would use)")
    p.add_argument("--preset", default="quick", choices=list(C.PRESETS), help=f"{_PRESETS} (default quick)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=[])
    p.add_argument("--list", action="store_true", help="list presets, methods and config keys")


def _config(args: argparse.Namespace) -> int:
    from . import config as C
    from .methods import METHODS

    if args.list:
        print("presets:", ", ".join(C.PRESETS))
        print("methods:", ", ".join(METHODS.names()))
        from .specialist import parameter_table

        print(
            "specialists:",
            ", ".join(f"{k} ({v / 1e6:.2f} M parameters)" for k, v in parameter_table().items()),
        )
        print("keys:   ", "\n         ".join(C.all_keys()))
        return 0
    cfg = C.build_config(args.preset, C.parse_overrides(args.overrides))
    print(cfg.pretty())
    return 0


COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "compare": _compare,
    "download": _download,
    "bench": _bench,
    "sweep": _sweep,
    "notebooks": _notebooks,
    "site": _site,
    "reference": _reference,
    "results": _results,
    "records": _records,
    "datasets": _datasets,
    "config": _config,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ScsamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted; `scsam-lite train --out RUN_DIR --resume` continues a training run",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
