import json

import click

from satseg.cli.options import verbosity_options


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--patch-size", default=256, show_default=True, help="Input size the statistics are for.")
@click.option("--bands", default=3, show_default=True, help="Input bands.")
@click.option("--classes", "num_classes", default=6, show_default=True, help="Output classes.")
@verbosity_options
def command(as_json, patch_size, bands, num_classes):
    """List the architectures: role, parameters, conv layers, MACs per patch, float32 weight bytes."""
    from satseg.cli.common import require_tensorflow

    require_tensorflow("models")
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
