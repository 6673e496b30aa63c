from dataclasses import fields

import click

from satseg.cli.options import comma_list, data_options, force_option, quiet, verbosity_options
from satseg.train import CHOICES, TrainConfig

D = {f.name: f.default for f in fields(TrainConfig) if not callable(f.default_factory)}


def _opt(*decls, key, **kw):
    """An option whose default comes from TrainConfig (the one source of the recipe)."""
    if key in CHOICES:
        kw.setdefault("type", click.Choice(CHOICES[key]))
    return click.option(*decls, default=D[key], show_default=True, **kw)


def _weights(value):
    if value is None or value == "balanced":
        return value
    try:
        return [float(w) for w in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"'balanced' or comma-separated numbers (got '{value}')") from None


@click.command("train")
@_opt("--model", "model_name", key="model", help="Zoo model to train (see `satseg models`).")
@click.option("--data", type=click.Path(file_okay=False), help="Dataset root [default: built-in synthetic scenes, with a notice].")
@data_options
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [default: runs/<model>-<time>].")
@click.option("--teacher", type=click.Path(dir_okay=False), multiple=True,
              help="Teacher .keras file: distil into --model. Repeat it to distil the mean of several teachers.")
@click.option("--init", type=click.Path(dir_okay=False),
              help="Start from the weights of a trained .keras file of --model (fine-tuning) instead of ImageNet/random.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue a run from its last finished epoch (options other than --epochs are ignored).")
@force_option
@_opt("--epochs", key="epochs", type=click.IntRange(min=1))
@_opt("--batch-size", key="batch_size", type=click.IntRange(min=1), help="Global batch size.")
@_opt("--lr", key="lr", type=float, help="Peak learning rate (AdamW).")
@_opt("--lr-schedule", key="lr_schedule", help="cosine: one warm-up epoch, then cosine decay.")
@_opt("--weight-decay", key="weight_decay", type=float, help="AdamW weight decay; 0: Adam.")
@_opt("--patch-size", key="patch_size", type=click.IntRange(min=1), help="Training crop / patch size.")
@_opt("--sampling", key="sampling", help="crops: new random crops of whole images each epoch; grid: fixed patches (reference).")
@_opt("--crops-per-epoch", key="crops_per_epoch", type=click.IntRange(min=1))
@_opt("--scale", key="scale", type=(float, float), metavar="LOW HIGH",
      help="Random crops: scale range (log-uniform); 1 1 turns scale augmentation off.")
@_opt("--rare-fraction", key="rare_fraction", type=click.FloatRange(0, 1),
      help="Random crops: share centred on a pixel of a uniformly drawn class (lifts rare classes).")
@_opt("--photometric", key="photometric", type=click.FloatRange(min=0),
      help="Random crops: brightness/contrast jitter (fraction of channel std / of contrast); 0: off.")
@_opt("--patch-mode", key="patch_mode", help="Grid patches: crop drops the borders (reference), pad keeps them.")
@_opt("--normalization", key="normalization",
      help="auto: ImageNet statistics for pretrained encoders, else the training images' (inside the model); minmax: per patch (reference).")
@_opt("--loss", key="loss")
@click.option("--class-weights", callback=lambda ctx, param, v: _weights(v), metavar="balanced|W,W,...",
              help="Per-class loss weights: 'balanced' (n / (k n_c) from the training masks) or one number per class.")
@_opt("--alpha", key="alpha", type=float, help="Weight of the student loss when distilling.")
@_opt("--temperature", key="temperature", type=float, help="Distillation temperature T.")
@_opt("--distill-mode", key="distill_mode",
      help="offline: teacher logits computed once and cached; online: teacher runs every step.")
@click.option("--unlabeled", type=click.Path(), multiple=True,
              help="Images without masks (a folder or a file; repeat it): with --teacher, the student learns them "
                   "from the teacher alone.")
@_opt("--unlabeled-fraction", key="unlabeled_fraction", type=click.FloatRange(0, 1),
      help="Share of the crops cut from the --unlabeled imagery.")
@_opt("--confidence", key="confidence", type=click.FloatRange(0, 1, max_open=True),
      help="Distil unlabelled pixels only where the teacher's top probability reaches this; 0: all.")
@_opt("--mix", key="mix", help="Mixed views of two crops: cutmix pastes a box of one into the other (labels follow); "
      "mixup blends them (labelled by an online teacher alone).")
@_opt("--mix-fraction", key="mix_fraction", type=click.FloatRange(0, 1), help="Share of the crops that are mixed.")
@_opt("--split", key="split", help="image: whole images per split, stratified by group (tile/folder); group: whole "
      "groups per split (chips that overlap on the ground); patch: the reference's random patch split.")
@click.option("--val-groups", callback=lambda ctx, param, v: comma_list(v), metavar="G,G,...",
              help="Groups (tiles, folders: see `satseg data inspect`) that form the validation split.")
@click.option("--test-groups", callback=lambda ctx, param, v: comma_list(v), metavar="G,G,...",
              help="Groups held out as the test split (evaluate scores them with --split test).")
@click.option("--split-file", type=click.Path(dir_okay=False),
              help="CSV of 'image,train|val|test' lines (paths relative to --data): your own split.")
@click.option("--max-patches", type=click.IntRange(min=1), help="Grid sampling: use only N patches (quick checks).")
@click.option("--patience", type=click.IntRange(min=1), help="Stop early after N epochs without a better val mIoU.")
@click.option("--no-augment", is_flag=True, help="Disable flips, rotations, scale and photometric jitter.")
@_opt("--strategy", key="strategy", help="mirrored: all local GPUs; multiworker: across machines (TF_CONFIG).")
@_opt("--precision", key="precision", help="mixed_float16 (GPUs; Keras scales the loss) or mixed_bfloat16: "
      "layers compute in 16 bits, weights stay float32; the saved model is float32.")
@_opt("--seed", key="seed", type=int, help="Random seed (recorded in config.json).")
@_opt("--split-seed", key="split_seed", type=int,
      help="Seed of the train/val/test split [default: --seed]; keep it to compare training seeds on one split.")
@verbosity_options
def command(model_name, data, out, teacher, init, resume_dir, force, no_augment, **kw):
    """Train a teacher, a student from scratch, or a distilled student (--teacher)."""
    from satseg.cli.common import require_tensorflow

    require_tensorflow("train")
    from satseg.train import default_run_dir, resume, train

    if resume_dir:
        src = click.get_current_context().get_parameter_source("epochs")
        summary = resume(resume_dir, verbose=0 if quiet() else 1,
                         epochs=kw["epochs"] if src == click.core.ParameterSource.COMMANDLINE else None)
    else:
        kw["unlabeled"] = list(kw["unlabeled"])
        cfg = TrainConfig(model=model_name, data=data, teacher=teacher, init=init, augment=not no_augment, **kw)
        summary = train(cfg, out or default_run_dir(model_name, bool(cfg.teachers)), force=force, verbose=0 if quiet() else 1)
    best = summary.get("best_val_miou")
    click.echo(f"done: best val mIoU {best if best is None else f'{best:.4f}'} at epoch {summary['best_epoch']} "
               f"of {summary['epochs']}; model: {summary['model']}")
    note = no_better_note(summary)
    if note:
        click.echo(note)


def no_better_note(summary: dict) -> str | None:
    """A line when the model scores no better on validation than calling every pixel its commonest class."""
    base, got = summary.get("majority_val_miou"), summary.get("best_model_val_miou")
    if base is None or got is None or got > base["miou"]:
        return None
    return (f"note: that is no better than calling every pixel {base['class']} (val mIoU {base['miou']:.4f}); "
            "train longer (--epochs) or on more labelled images")
