import json
import shlex
import sys

import click

from satseg.cli.options import (
    comma_list,
    data_options,
    force_option,
    json_option,
    quiet,
    seed_option,
    verbosity_options,
)
from satseg.fit import TARGET_FORMATS, FitConfig


@click.command("fit")
@click.argument("data", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="The folder of the finished product: model_int8.tflite, model.keras, card.md, figures/, "
              "report.json and the runs under runs/.")
@data_options
@click.option("--target", type=click.Choice(list(TARGET_FORMATS)), default="cpu", show_default=True,
              help="Where the student runs: cpu (int8 LiteRT), edgetpu (also the Coral file), gpu (also the "
              "GPU-delegate file).")
@click.option("--budget", metavar="TIME", help="Training time for teacher and student together (2h, 90m, 1h30m): "
              "the epochs are sized to it from a measured warm-up [default: the recipe's epochs].")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs of each training, instead of --budget.")
@click.option("--teacher", "teacher_model", default="lite0_unet", show_default=True,
              help="The teacher's architecture (see `satseg models --architectures`).")
@click.option("--student", "student_model", default="lite0_edge", show_default=True,
              help="The student's architecture (under 100 KB as int8).")
@click.option("--val-groups", metavar="G,G,...", help="Groups (folders, tiles) held out for validation.")
@click.option("--test-groups", metavar="G,G,...", help="Groups held out as the test split the card reports.")
@click.option("--patch-size", type=click.IntRange(min=32), help="Training crop size [default: the recipe's].")
@click.option("--crops-per-epoch", type=click.IntRange(min=1), help="Crops per epoch [default: the recipe's].")
@seed_option()
@force_option
@json_option
@verbosity_options
def command(data, out, classes, masks, pairs, target, budget, epochs, teacher_model, student_model, val_groups,
            test_groups, patch_size, crops_per_epoch, seed, force, as_json):
    """From a labelled folder to a tested, carded edge model, in one command.

    Inspects and pairs DATA, takes or infers the classes, chooses an honest split (and says why),
    trains the teacher, distils the student with any folders that have no masks, exports it to
    int8 LiteRT, scores both on the test split and writes card.md with its figures. Killed, the
    same command goes on where it stopped (finished stages are checked, not redone).
    """
    from satseg.cli.common import require_tensorflow
    from satseg.fit import fit, parse_budget

    cfg = FitConfig(data=data, classes=classes, masks=masks, pairs=pairs, target=target,
                    budget=parse_budget(budget) if budget else None, teacher=teacher_model, student=student_model,
                    epochs=epochs, val_groups=comma_list(val_groups), test_groups=comma_list(test_groups), seed=seed,
                    patch_size=patch_size, crops_per_epoch=crops_per_epoch)
    require_tensorflow("fit")  # first: it silences TensorFlow's native start-up lines, which the checks import
    cfg.check()
    log = (lambda *a: None) if (quiet() or as_json) else click.echo
    command_line = "satseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = fit(cfg, out, force=force, command=command_line, log=log, verbose=0 if (quiet() or as_json) else 1)
    if as_json:
        click.echo(json.dumps({"out": str(out), "stages": result}, indent=2))
    else:
        ev = result["evaluate"]
        click.echo(f"done: teacher mIoU {ev['teacher_miou']:.4f}, int8 student {ev['student_miou']:.4f} on the test "
                   f"split; card: {out}/card.md\n{result['remark']}")
