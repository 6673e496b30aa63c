import json
from pathlib import Path

import click

from satseg.cli.options import force_option, seed_option, verbosity_options


@click.command("demo")
@click.option("--out", default="satseg-demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--epochs", default=10, show_default=True, help="Epochs for the teacher and the student.")
@click.option("--images", default=12, show_default=True, help="Synthetic 512x512 scenes to generate.")
@click.option("--patch-size", default=128, show_default=True, help="Training patch size.")
@force_option
@seed_option()
@verbosity_options
def command(out, epochs, images, patch_size, force, seed):
    """The main job on built-in synthetic data, no download: train a teacher, distil a
    student, export it to LiteRT with a size report, evaluate it and predict with it."""
    from satseg.cli.common import require_tensorflow

    require_tensorflow("demo")
    from satseg.errors import SatsegError
    from satseg.evaluate import evaluate, format_table, load_predictor
    from satseg.export import export_model
    from satseg.synthetic import write_dataset
    from satseg.train import TrainConfig, train

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise SatsegError(f"{out}: exists; pass --force to overwrite it")
    data = out / "data"
    write_dataset(data, tiles=2, images_per_tile=max(images // 2, 1), seed=seed)
    click.echo(f"[1/5] synthetic dataset: {images} scenes in {data}")
    common = dict(data=str(data), epochs=epochs, seed=seed, patch_size=patch_size, crops_per_epoch=64)
    click.echo("[2/5] teacher: ImageNet-pretrained EfficientNet-Lite0 U-Net")
    t = train(TrainConfig(model="lite0_unet", **common), out / "teacher", force=True)
    click.echo(f"      best val mIoU {t['best_val_miou']:.3f} -> {t['model']}")
    click.echo("[3/5] student: lite0_edge, distilled from the teacher")
    s = train(TrainConfig(model="lite0_edge", teacher=t["model"], **common), out / "student", force=True)
    click.echo(f"      best val mIoU {s['best_val_miou']:.3f} -> {s['model']}")
    click.echo("[4/5] exporting the student (SavedModel, LiteRT float32 to int8), each file checked against it")
    export_model(s["model"], out / "export", teacher=t["model"], force=True, n_calibration=16, n_parity=8,
                 log=lambda *a: None)
    click.echo(f"      exported to {out / 'export'}")
    click.echo("      " + ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KB"
                                    for p in sorted((out / "export").glob("*.tflite"))))
    tfl = out / "export" / "model_int8.tflite"
    result = evaluate(load_predictor(tfl), data, split="test", seed=seed, plots_dir=out / "evaluate", progress=False)
    (out / "evaluate" / "evaluate.json").write_text(json.dumps(result, indent=2))
    click.echo(f"[5/5] int8 student on the synthetic test images:\n{format_table(result)}")
    click.echo(f"everything is in {out}/")
