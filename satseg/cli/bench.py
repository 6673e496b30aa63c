import click


@click.command("bench")
def command():
    """Not built yet."""
    raise click.ClickException("'satseg bench' is not built yet")
