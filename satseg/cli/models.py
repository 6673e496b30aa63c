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
    """The shipped models by task: test score with its interval, int8 size, speed and what each
    is for; the default (used when --model is not given) and each task's default are marked.
    Pass a name as --model."""
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
    tasks: dict[str, list[dict]] = {}
    for r in rows:
        tasks.setdefault(r.get("task") or "", []).append(r)
    for task, members in tasks.items():
        name = members[0].get("score", "mIoU")
        click.echo(f"{task}: test {name}, int8")
        click.echo(f"  {'name':<22}{'role':<9}{'test score':>11}{'95 % interval':>15}{'int8 KB':>9}{'s/image':>9}  pick it for")
        for r in members:
            ci = r.get("test_score_int8_interval", r.get("test_miou_int8_interval"))
            sec = r.get("int8_seconds_per_image")
            mark = "*" if r["default"] else "+" if r.get("default_for_task") else " "
            click.echo(f"{mark} {r['name']:<22}{r['role']:<9}{r.get('test_score_int8', r.get('test_miou_int8')):>11.3f}"
                       f"{f'{ci[0]:.2f}-{ci[1]:.2f}' if ci else 'n/a':>15}{r['int8_bytes'] / 1024:>9.1f}"
                       f"{f'{sec:.2f}' if sec else 'n/a':>9}  {r.get('pick') or ''}")
    click.echo(f"* the default (--model not given); + the default for its task. Scores on each task's test split's "
               f"whole images (the interval: a bootstrap over them); imagery unlike it scores lower. s/image: "
               f"`satseg bench` ({INDEX.parent / 'bench.json'}). Cards: {INDEX.parent / 'README.md'}")


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
