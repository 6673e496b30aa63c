import json

import click

from satseg.cli.options import verbosity_options


@click.command("models")
@click.option("--architectures", is_flag=True,
              help="List the architectures one can train instead (needs TensorFlow): role, parameters, conv layers, "
                   "MACs per patch, float32 weight bytes.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--patch-size", default=256, show_default=True, help="With --architectures: input size of the statistics.")
@click.option("--bands", default=3, show_default=True, help="With --architectures: input bands.")
@click.option("--classes", "num_classes", default=6, show_default=True, help="With --architectures: output classes.")
@verbosity_options
def command(architectures, as_json, patch_size, bands, num_classes):
    """The shipped models: task, test accuracy with its interval, int8 size, speed and what each
    is for; the default (used when --model is not given) is marked. Pass a name as --model."""
    if architectures:
        return architectures_table(as_json, patch_size, bands, num_classes)
    from satseg.zoo import INDEX, shipped_models

    rows = shipped_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if len(rows) == 1 and not INDEX.exists():
        click.echo(f"{rows[0]['name']} (default): {rows[0]['int8']}\n"
                   "(this install carries only the default model; the zoo is in the repository's exported_models/)")
        return
    click.echo(f"  {'name':<22}{'role':<9}{'test mIoU int8':>15}{'95 % interval':>15}{'int8 KB':>9}{'s/image':>9}  pick it for")
    for r in rows:
        ci = r.get("test_miou_int8_interval")
        sec = r.get("int8_seconds_per_image")
        click.echo(f"{'*' if r['default'] else ' '} {r['name']:<22}{r['role']:<9}{r['test_miou_int8']:>15.3f}"
                   f"{f'{ci[0]:.2f}-{ci[1]:.2f}' if ci else 'n/a':>15}{r['int8_bytes'] / 1024:>9.1f}"
                   f"{f'{sec:.2f}' if sec else 'n/a':>9}  {r.get('pick') or ''}")
    task = {r.get("task") for r in rows} - {None}
    click.echo(f"* the default. Task: {', '.join(sorted(task))}; scores on the test split's whole images (the "
               f"interval: a bootstrap over them); imagery unlike it scores lower. s/image: `satseg bench` "
               f"({INDEX.parent / 'bench.json'}). Cards: {INDEX.parent / 'README.md'}")


def architectures_table(as_json, patch_size, bands, num_classes):
    from satseg.cli.common import require_tensorflow

    require_tensorflow("models --architectures")
    from satseg.models import zoo_table

    rows = zoo_table(patch_size, bands, num_classes)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':<11}{'role':<8}{'params':>10}{'conv layers':>12}{'MACs/patch':>13}{'fp32 weights':>14}  about")
    for r in rows:
        click.echo(f"{r['name']:<11}{r['role']:<8}{r['params']:>10,}{r['conv_layers']:>12}"
                   f"{r['macs'] / 1e9:>11.3f} G{r['weight_bytes'] / 1024:>11.1f} KB  "
                   f"{'ImageNet encoder; ' if r['pretrained'] else ''}{r['summary']}")
    click.echo(f"(per {patch_size}x{patch_size}x{bands} patch, {num_classes} classes)")
