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
    """List the model zoo: parameters, conv layers, MACs per patch, float32 weight bytes."""
    from satseg.cli.common import require_tensorflow

    require_tensorflow("models")
    from satseg.models import zoo_table

    rows = zoo_table(patch_size, bands, num_classes)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':<10}{'params':>12}{'conv layers':>13}{'MACs/patch':>15}{'fp32 weights':>15}")
    for r in rows:
        click.echo(f"{r['name']:<10}{r['params']:>12,}{r['conv_layers']:>13}"
                   f"{r['macs'] / 1e9:>13.3f} G{r['weight_bytes'] / 1024:>12.1f} KB")
    click.echo(f"(per {patch_size}x{patch_size}x{bands} patch, {num_classes} classes)")
