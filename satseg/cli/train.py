
import click

from satseg.cli.common import seed_option


@click.command("train")
@click.option("--model", "model_name", default="student", show_default=True,
              help="Zoo model to train (see `satseg models`).")
@click.option("--data", type=click.Path(file_okay=False), help="Dataset root; default: built-in synthetic data.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [default: runs/<model>-<time>].")
@click.option("--teacher", type=click.Path(dir_okay=False), help="Teacher .keras file: distil into --model.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue an interrupted run from its last finished epoch (options other than --epochs are ignored).")
@click.option("--force", is_flag=True, help="Overwrite an existing run directory.")
@click.option("--epochs", default=20, show_default=True)
@click.option("--batch-size", default=16, show_default=True, help="Global batch size.")
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--patch-size", default=256, show_default=True)
@click.option("--patch-mode", type=click.Choice(["crop", "pad"]), default="crop", show_default=True)
@click.option("--normalization", type=click.Choice(["minmax", "standard"]), default="minmax", show_default=True)
@click.option("--loss", type=click.Choice(["ce", "dice", "focal", "dice_focal"]), default="ce", show_default=True)
@click.option("--alpha", default=0.1, show_default=True, help="Weight of the student loss when distilling.")
@click.option("--temperature", default=3.0, show_default=True, help="Distillation temperature T.")
@click.option("--distill-mode", type=click.Choice(["offline", "online"]), default="offline", show_default=True,
              help="offline: teacher logits computed once and cached; online: teacher runs every step.")
@click.option("--split", type=click.Choice(["image", "patch"]), default="image", show_default=True,
              help="image: whole images per split (no leakage); patch: the reference's random patch split.")
@click.option("--max-patches", type=int, help="Use only N patches (quick checks).")
@click.option("--patience", type=int, help="Stop early after N epochs without a better val mIoU.")
@click.option("--no-augment", is_flag=True, help="Disable flips and 90-degree rotations.")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker"]), default="default",
              show_default=True, help="mirrored: all local GPUs; multiworker: across machines (TF_CONFIG).")
@seed_option
def command(model_name, data, out, teacher, resume_dir, force, epochs, batch_size, lr, patch_size, patch_mode,
            normalization, loss, alpha, temperature, distill_mode, split, max_patches, patience, no_augment,
            strategy, seed):
    """Train a teacher, a student from scratch, or a distilled student (--teacher)."""
    from satseg.train import TrainConfig, default_run_dir, resume, train

    if resume_dir:
        src = click.get_current_context().get_parameter_source("epochs")
        summary = resume(resume_dir, epochs=epochs if src == click.core.ParameterSource.COMMANDLINE else None)
    else:
        cfg = TrainConfig(model=model_name, data=data, teacher=teacher, epochs=epochs, batch_size=batch_size,
                          lr=lr, patch_size=patch_size, patch_mode=patch_mode, normalization=normalization,
                          loss=loss, alpha=alpha, temperature=temperature, distill_mode=distill_mode,
                          split=split, max_patches=max_patches, seed=seed, augment=not no_augment,
                          strategy=strategy, patience=patience)
        summary = train(cfg, out or default_run_dir(model_name, bool(teacher)), force=force)
    click.echo(f"done: best val mIoU {summary['best_val_miou']:.4f} at epoch {summary['best_epoch']} "
               f"of {summary['epochs']}; model: {summary['model']}")
